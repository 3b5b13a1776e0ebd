// Package profiling serves net/http/pprof for benchmark work, in binaries
// built with `-tags pprof` only: set PPROF_ADDR (e.g. 127.0.0.1:6060).
// Without the tag the package is empty, so the services import it
// unconditionally and normal builds carry no profiler.
package profiling
