// Command tunnel-server is one of warren's six binaries; see internal/cli/tunnelserver.
package main

import (
	"os"

	"github.com/warrenhq/warren/internal/cli/tunnelserver"
)

func main() { os.Exit(tunnelserver.Main(os.Args[1:])) }
