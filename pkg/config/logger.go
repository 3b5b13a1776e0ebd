package config

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logger builds the zap logger LOG_LEVEL and LOG_FORMAT describe.
func (l Log) Logger(service string) (*zap.Logger, error) {
	level, err := l.level()
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	if l.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.Sampling = nil
	log, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("config: build logger: %w", err)
	}
	return log.With(zap.String("service", service)), nil
}

func (l Log) level() (zapcore.Level, error) {
	level, err := zapcore.ParseLevel(l.Level)
	if err != nil {
		return level, Invalid("LOG_LEVEL", l.Level, "must be debug, info, warn, error, dpanic, panic or fatal")
	}
	return level, nil
}
