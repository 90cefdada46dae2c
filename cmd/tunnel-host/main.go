// Command tunnel-host is one of warren's six binaries; see internal/cli/tunnelhost.
package main

import (
	"os"

	"github.com/warrenhq/warren/internal/cli/tunnelhost"
)

func main() { os.Exit(tunnelhost.Main(os.Args[1:])) }
