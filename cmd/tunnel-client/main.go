// Command tunnel-client is one of warren's six binaries; see internal/cli/tunnelclient.
package main

import (
	"os"

	"github.com/warrenhq/warren/internal/cli/tunnelclient"
)

func main() { os.Exit(tunnelclient.Main(os.Args[1:])) }
