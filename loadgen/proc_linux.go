package main

import "syscall"

// childAttr makes a child die with loadgen: however loadgen ends (an
// error, Ctrl-C, a kill), nothing it started outlives it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
