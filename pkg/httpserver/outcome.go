package httpserver

import "github.com/gin-gonic/gin"

// Outcome is what happened to a request whose handler took its connection
// from net/http (an event stream) or answered nothing: the access log
// cannot see those through the response writer, which would report 200.
type Outcome struct {
	Status int    // the status sent; 0: no response was sent
	Bytes  int64  // bytes written to the connection by the time the handler returned
	Note   string // what happened, e.g. "streaming", "client went away"
}

const outcomeKey = "httpserver.outcome"

// SetOutcome records what the access log reports for c.
func SetOutcome(c *gin.Context, o Outcome) { c.Set(outcomeKey, o) }

// outcomeOf is what the handler recorded, or what the response writer saw.
func outcomeOf(c *gin.Context) Outcome {
	if v, ok := c.Get(outcomeKey); ok {
		if o, ok := v.(Outcome); ok {
			return o
		}
	}
	return Outcome{Status: c.Writer.Status(), Bytes: int64(max(c.Writer.Size(), 0))}
}
