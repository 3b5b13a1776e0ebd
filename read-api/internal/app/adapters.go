package app

import (
	"context"

	"notify/pkg/redisbus"
	"notify/read-api/internal/drain"
	"notify/read-api/internal/httpapi"
	"notify/read-api/internal/hub"
	"notify/read-api/internal/stream"
)

// Each core package declares what it needs; these are the implementations
// the app wires in, checked when it compiles. The hang-up watchers are
// checked in their own package.
var (
	_ stream.History        = (*redisbus.History)(nil)
	_ stream.StateReader    = (*redisbus.State)(nil)
	_ httpapi.HistoryReader = (*redisbus.History)(nil)
	_ httpapi.Bus           = (*redisbus.Subscriber)(nil)
	_ httpapi.HubStats      = (*hub.Hub)(nil)
	_ httpapi.Drainer       = (*drain.Drain)(nil)
	_ hub.Bus               = hubBus{}
	_ hub.Pending           = (*redisbus.Pending)(nil)
	_ redisbus.Handler      = (*hub.Hub)(nil)
)

// hubBus is the subscriber as the hub's Bus: the same calls, with the
// pending subscription as the hub's Pending.
type hubBus struct{ *redisbus.Subscriber }

func (b hubBus) Subscribe(ctx context.Context, topics ...string) (hub.Pending, error) {
	p, err := b.Subscriber.Subscribe(ctx, topics...)
	if err != nil {
		return nil, err // not a nil *Pending in a non-nil interface
	}
	return p, nil
}
