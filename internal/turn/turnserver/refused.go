package turnserver

import "syscall"

var errConnRefused = syscall.ECONNREFUSED
