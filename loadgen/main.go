// Command loadgen loads and measures Notify: it opens SSE streams (spread
// over worker processes and 127.0.0.x source addresses), publishes through
// write-api, and reports latency, throughput and the server's cost.
//
//	loadgen bench            the standard scenarios on a stack it starts (make bench)
//	loadgen fleet [flags]    a whole fleet: sellers' streams on several pods, a rolling restart (make bench-fleet)
//	loadgen run [flags]      one load against a running write-api and read-api
//	loadgen baseline         a plain net/http SSE server, the comparison point
//	loadgen floor            one write(2) per delivery and nothing else: the machine's floor
//	loadgen worker           internal: a process holding a share of the streams
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen bench|fleet|run|baseline|floor [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "bench":
		err = runBench(os.Args[2:])
	case "fleet":
		err = runFleetBench(os.Args[2:])
	case "run":
		err = runRun(os.Args[2:])
	case "baseline":
		err = runBaseline(os.Args[2:])
	case "floor":
		err = runFloor(os.Args[2:])
	case "worker":
		err = runWorker()
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func runtimeNumCPU() int { return runtime.NumCPU() }
