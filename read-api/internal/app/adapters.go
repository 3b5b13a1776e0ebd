package app

import (
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
	_ hub.Bus               = (*redisbus.Subscriber)(nil)
	_ redisbus.Handler      = (*hub.Hub)(nil)
)
