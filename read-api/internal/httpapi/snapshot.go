package httpapi

import (
	"net/http"
	"strconv"

	"notify/pkg/problem"
	"notify/read-api/internal/stream"
)

// snapshotParam reads the stream's snapshot parameter: the state reader
// when it is true, nil when absent or false.
func (h *Handler) snapshotParam(r *http.Request) (stream.StateReader, error) {
	vs, ok := r.URL.Query()["snapshot"]
	if !ok {
		return nil, nil
	}
	on, err := strconv.ParseBool(vs[0])
	if len(vs) != 1 || err != nil {
		return nil, problem.New(problem.Invalid, "snapshot: want true or false")
	}
	if !on || h.state == nil {
		return nil, nil
	}
	return h.state, nil
}
