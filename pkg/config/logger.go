package config

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logger builds the zap logger LOG_LEVEL and LOG_FORMAT describe. Every
// line carries the service and the instance (see Instance), so the logs of
// replicas on one machine or in one cluster can be told apart.
func (l Log) Logger(service, addr string, opts ...zap.Option) (*zap.Logger, error) {
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
	log, err := zc.Build(opts...)
	if err != nil {
		return nil, fmt.Errorf("config: build logger: %w", err)
	}
	return log.With(zap.String("service", service), zap.String("pod", l.Instance(addr))), nil
}

// Instance names this process in logs: POD_NAME when set, else HOSTNAME
// (a pod's or a container's name), else the listen address, which is what
// tells apart replicas started side by side on one host.
func (l Log) Instance(addr string) string {
	switch {
	case l.Pod != "":
		return l.Pod
	case l.Hostname != "":
		return l.Hostname
	}
	return addr
}

func (l Log) level() (zapcore.Level, error) {
	level, err := zapcore.ParseLevel(l.Level)
	if err != nil {
		return level, Invalid("LOG_LEVEL", l.Level, "must be debug, info, warn, error, dpanic, panic or fatal")
	}
	return level, nil
}
