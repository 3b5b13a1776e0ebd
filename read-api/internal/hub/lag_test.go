package hub

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"notify/pkg/notification"
)

func timedMessage(t testing.TB, topic string, at time.Time) notification.Message {
	env := notification.Envelope{ID: "0193", Topic: topic, Type: "t", Time: at, Data: []byte(`{}`)}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return notification.Message{Topic: topic, Pos: notification.Position{Epoch: 1, Seq: 1, Link: 7}, Type: "t", Envelope: b}
}

// quiet is a member that drops what it is pushed.
type quiet struct{ _ byte }

func (*quiet) Push(*Event)   {}
func (*quiet) Resync(string) {}

func join(t testing.TB, h *Hub, n int, topic string) {
	for range n {
		if err := h.Join(t.Context(), &quiet{}, []string{topic}); err != nil {
			t.Fatal(err)
		}
	}
}

// The lag is observed once per message fanned out, whatever the number of
// recipients, from the envelope's time; a message nobody here holds, or
// without a readable time, is not observed.
func TestLagObservedOncePerMessage(t *testing.T) {
	t.Parallel()
	h := New(newFakeBus(), zap.NewNop())
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lag", Buckets: []float64{1, 5}})
	h.ObserveLag(lag)
	join(t, h, 50, "seller:1")

	h.Deliver(timedMessage(t, "seller:1", time.Now().Add(-2*time.Second)))
	h.Deliver(timedMessage(t, "seller:2", time.Now()))
	h.Deliver(message("seller:1", 2)) // no time field

	var m dto.Metric
	if err := lag.Write(&m); err != nil {
		t.Fatal(err)
	}
	hist := m.GetHistogram()
	if got := hist.GetSampleCount(); got != 1 {
		t.Fatalf("%d observations, want 1", got)
	}
	if s := hist.GetSampleSum(); s < 2 || s > 4 {
		t.Errorf("lag %v s, want about 2", s)
	}
}

// Measuring the lag adds no allocation per recipient: the cost with 100
// streams is the cost with one.
func TestLagAddsNothingPerDelivery(t *testing.T) {
	allocs := func(members int, observe bool) float64 {
		h := New(newFakeBus(), zap.NewNop())
		if observe {
			h.ObserveLag(prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lag"}))
		}
		join(t, h, members, "seller:1")
		msg := timedMessage(t, "seller:1", time.Now())
		return testing.AllocsPerRun(200, func() { h.Deliver(msg) })
	}
	one, hundred := allocs(1, true)-allocs(1, false), allocs(100, true)-allocs(100, false)
	if one > 1 || hundred != one {
		t.Fatalf("allocations added by the lag: %v per message to 1 stream, %v to 100", one, hundred)
	}
}
