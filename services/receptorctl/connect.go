package receptorctl

import (
	"errors"
	"io"
	"net"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() { addVerb("", newConnectCmd) }

func newConnectCmd(a *app) *cobra.Command {
	var raw bool
	var tlsClient string
	cmd := &cobra.Command{
		Use:   "connect NODE SERVICE",
		Short: "Connect the local terminal to a Receptor service on a remote node.",
		Long: `Connect the local terminal (or stdin/stdout) to a Receptor service on a remote node.
Bytes from stdin go to the service and the service's bytes to stdout; at the end of stdin
the connection is half-closed and the command ends when the service closes its side.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			be, _, err := a.backend(ctx)
			if err != nil {
				return err
			}
			conn, err := be.Connect(ctx, args[0], args[1], tlsClient)
			if err != nil {
				return err
			}
			defer conn.Close()
			if f, ok := a.stdio.In.(*os.File); ok && raw && a.stdio.IsTerminal != nil && a.stdio.IsTerminal(f) {
				if old, err := term.MakeRaw(int(f.Fd())); err == nil {
					defer func() { _ = term.Restore(int(f.Fd()), old) }()
				}
			}
			err = bridge(conn, a.stdio.In, a.stdio.Out)
			if !a.machine() {
				a.println("") // receptorctl ends with a newline
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&raw, "raw", "r", false, "Set terminal to raw mode")
	cmd.Flags().StringVar(&tlsClient, "tls-client", "", "TLS client config name used when connecting to remote node")
	return cmd
}

// bridge copies in to conn (then half-closes it) and conn to out until the
// remote side ends the connection.
func bridge(conn net.Conn, in io.Reader, out io.Writer) error {
	go func() {
		_, _ = io.Copy(conn, in)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, err := io.Copy(out, conn)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
