package app

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"notify/pkg/devtoken"
	"notify/pkg/redistest"
)

// A pod that drains its streams and stops logs nothing at WARN or above,
// while the hub's janitor unsubscribes the topics the drain left idle. Run
// stops the janitor, and waits for its last UNSUBSCRIBE, before the
// subscriber closes its connections (the janitor's side of that order:
// hub.TestRunEndsAfterItsUnsubscribe).
func TestDrainedShutdownLogsNoWarning(t *testing.T) {
	r := redistest.Start(t)
	core, logs := observer.New(zapcore.WarnLevel)
	a, stopApp := runAppEnv(t, r, zap.New(core), map[string]string{"DRAIN_TIMEOUT": "4s"})
	var once sync.Once
	stop := func() { once.Do(stopApp) }
	t.Cleanup(stop)
	const streams = 40
	conns := make([]net.Conn, 0, streams)
	for i := range streams {
		topic := fmt.Sprintf("seller:drained-%d", i)
		tok, err := devtoken.Subscriber(secret, "notifications", topic, []string{topic}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := openRaw(t, a.Addr(), tok)
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	subscribed := a.Hub().Subscribed()
	if subscribed < streams {
		t.Fatalf("%d topics subscribed for %d streams on their own topics", subscribed, streams)
	}

	stop() // drains: the streams closed first have their topics unsubscribed during the drain
	if got := a.Hub().Subscribed(); got >= subscribed {
		t.Errorf("%d topics still subscribed after the drain, %d before: the janitor never ran during it", got, subscribed)
	}
	for _, e := range logs.All() {
		t.Errorf("logged %s %q %v", e.Level, e.Message, e.ContextMap())
	}
}
