package tunnelhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelhost"
)

// The control socket is a local HTTP API on a unix socket (mode 0600), so
// only the user running tunnel-host can change its ports.

type controlServer struct {
	srv  *http.Server
	path string
}

type statusBody struct {
	Status string            `json:"status"`
	Ports  []tunnelhost.Port `json:"ports"`
}

func listenControl(path string, host *tunnelhost.Host) (*controlServer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// A socket file left by a crashed host is stale if nobody answers on it.
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, errors.New("another tunnel-host is already listening there")
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, statusBody{Status: string(host.Status()), Ports: host.Ports()})
	})
	mux.HandleFunc("POST /ports", func(w http.ResponseWriter, r *http.Request) {
		var p tunnelhost.Port
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&p); err != nil || p.Number == 0 {
			writeJSON(w, 400, map[string]string{"error": "expected {\"port\":N,\"protocol\":\"...\"}"})
			return
		}
		if err := host.AddPort(r.Context(), p); err != nil {
			writeJSON(w, 502, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, 200, statusBody{Status: string(host.Status()), Ports: host.Ports()})
	})
	mux.HandleFunc("DELETE /ports/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseUint(r.PathValue("n"), 10, 16)
		if err != nil || n == 0 {
			writeJSON(w, 400, map[string]string{"error": "bad port number"})
			return
		}
		if err := host.RemovePort(r.Context(), uint16(n)); err != nil {
			writeJSON(w, 502, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, 200, statusBody{Status: string(host.Status()), Ports: host.Ports()})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return &controlServer{srv: srv, path: path}, nil
}

func (c *controlServer) close() {
	c.srv.Close()
	os.Remove(c.path)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// controlCall sends one request to a running tunnel-host.
func controlCall(ctx context.Context, cfg *Config, method, path string, body any) (*statusBody, error) {
	sock := controlPath(cfg)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, "http://tunnel-host"+path, rd)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no tunnel-host answers on %s (is it running for tunnel %q? see --control-socket): %w", sock, cfg.Tunnel, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != 200 {
		var e struct{ Error string }
		json.Unmarshal(data, &e)
		return nil, fmt.Errorf("tunnel-host refused: %s", e.Error)
	}
	var st statusBody
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("tunnel-host answered %q", data)
	}
	return &st, nil
}

func printStatus(app *cli.App, o *cli.Output, st *statusBody) error {
	if o.JSON() {
		return cli.WriteJSON(app.Stdout, st)
	}
	fmt.Fprintf(app.Stdout, "status: %s\n", st.Status)
	tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tPROTOCOL")
	for _, p := range st.Ports {
		fmt.Fprintf(tw, "%d\t%s\n", p.Number, p.Protocol)
	}
	return tw.Flush()
}

func statusCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{Use: "status", Short: "Show the connection status and ports of a running tunnel-host", Args: cobra.NoArgs}
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		st, err := controlCall(cmd.Context(), cfg, "GET", "/status", nil)
		if err != nil {
			return err
		}
		return printStatus(app, out, st)
	}
	return cmd
}

func portsCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{Use: "ports", Short: "Add or remove ports of a running tunnel-host", Args: cobra.NoArgs}
	add := &cobra.Command{Use: "add PORT[/PROTOCOL]", Short: "Expose one more local port", Args: cobra.ExactArgs(1)}
	addOut := cli.AddOutputFlag(add)
	add.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := parsePort(args[0])
		if err != nil {
			return cli.Usagef("%v", err)
		}
		st, err := controlCall(cmd.Context(), cfg, "POST", "/ports", p)
		if err != nil {
			return err
		}
		return printStatus(app, addOut, st)
	}
	remove := &cobra.Command{Use: "remove PORT", Short: "Stop exposing a port", Args: cobra.ExactArgs(1)}
	removeOut := cli.AddOutputFlag(remove)
	remove.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := parsePort(args[0])
		if err != nil {
			return cli.Usagef("%v", err)
		}
		st, err := controlCall(cmd.Context(), cfg, "DELETE", "/ports/"+strconv.Itoa(int(p.Number)), nil)
		if err != nil {
			return err
		}
		return printStatus(app, removeOut, st)
	}
	cmd.AddCommand(add, remove)
	return cmd
}
