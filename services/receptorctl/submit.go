package receptorctl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func init() { addVerb("work", newWorkSubmitCmd) }

type submitFlags struct {
	node, payload, literal, tlsClient, ttl string
	noPayload, signWork, follow, rm        bool
	params                                 []string
	results                                resultsFlags
}

func newWorkSubmitCmd(a *app) *cobra.Command {
	var sf submitFlags
	cmd := &cobra.Command{
		Use:   "submit WORKTYPE [CMDPARAMS]...",
		Short: "Submit a new unit of work.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.submit(cmd, &sf, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	f.StringVar(&sf.node, "node", "", "Receptor node to run the work on. Defaults to the local node.")
	f.StringVarP(&sf.payload, "payload", "p", "", "File containing unit of work data. Use - for stdin.")
	f.StringVarP(&sf.literal, "payload-literal", "l", "", "Use the command line string as the literal unit of work data.")
	f.BoolVarP(&sf.noPayload, "no-payload", "n", false, "Send an empty payload.")
	f.StringVar(&sf.tlsClient, "tls-client", "", "TLS client used when submitting work to a remote node")
	f.StringVar(&sf.ttl, "ttl", "", "Time to live until remote work must start, e.g. 1h20m30s or 30m10s")
	f.BoolVar(&sf.signWork, "signwork", false, "Digitally sign remote work submissions")
	f.BoolVarP(&sf.follow, "follow", "f", false, "Remain attached to the job and print its results to stdout")
	f.BoolVar(&sf.rm, "rm", false, "Release unit after completion")
	f.StringArrayVarP(&sf.params, "param", "a", nil, "Additional Receptor parameter (key=value format; value @FILE: the file's contents)")
	sf.results.register(f)
	return cmd
}

// submitCode is a submit failure's exit code: its class, else the Python
// receptorctl's 101.
func submitCode(err error) error { return withCode(exitCode(err, ExitSubmit), err) }

func (a *app) submit(cmd *cobra.Command, sf *submitFlags, workType string, cmdParams []string) error {
	n := 0
	for _, set := range []bool{sf.payload != "", sf.noPayload, sf.literal != ""} {
		if set {
			n++
		}
	}
	if n < 1 {
		return usageError(errors.New("Must provide one of --payload, --no-payload or --payload-literal.")) //nolint:staticcheck // receptorctl's text
	}
	if n > 1 {
		return usageError(errors.New("Cannot provide more than one of --payload, --no-payload and --payload-literal.")) //nolint:staticcheck // receptorctl's text
	}
	if sf.rm && !sf.follow {
		fmt.Fprintln(a.stdio.Err, "Warning: using --rm without --follow. Unit results will never be seen.")
	}
	var payload io.Reader
	switch {
	case sf.literal != "":
		payload = strings.NewReader(sf.literal + "\n")
	case sf.noPayload:
		payload = bytes.NewReader(nil)
	case sf.payload == "-":
		payload = a.stdio.In
	default:
		f, err := os.Open(sf.payload)
		if err != nil {
			return usageError(fmt.Errorf("Failed to load payload file: %w", err)) //nolint:staticcheck // receptorctl's text
		}
		defer f.Close()
		payload = f
	}
	req := submitRequest{WorkType: workType, Node: sf.node, TLSClient: sf.tlsClient, TTL: sf.ttl, SignWork: sf.signWork}
	if req.Node == "" {
		req.Node = "localhost"
	}
	params, err := workParams(sf.params, cmdParams, req)
	if err != nil {
		return err
	}
	req.Params = params

	ctx := a.ctx(cmd)
	be, _, err := a.backend(ctx)
	if err != nil {
		return err
	}
	res, err := be.Submit(ctx, req, payload)
	if err != nil {
		if exitCode(err, -1) != -1 { // the node's reply, as receptorctl words it
			err = fmt.Errorf("Failed to start work unit: %w", err) //nolint:staticcheck // receptorctl's text
		}
		return submitCode(err)
	}
	unitID := str(res["unitid"])
	var runErr error
	switch {
	case sf.follow:
		if a.machine() {
			if err := a.emit(res, true); err != nil {
				return err
			}
		}
		runErr = a.results(ctx, be, unitID, &sf.results)
	case a.machine():
		runErr = a.emit(res, false)
	default:
		a.println("Result: " + str(res["result"]))
		a.println("Unit ID: " + unitID)
	}
	if sf.rm && unitID != "" {
		if err := a.opOnUnits(ctx, be, "release", []string{unitID}); err != nil && runErr == nil {
			runErr = err
		}
	}
	return runErr
}

// workParams builds the work params as receptorctl does: each -a key=value
// (a value "@FILE" is the file's contents, "@@..." is kept as it is), then
// CMDPARAMS joined with spaces onto "params". Keys that are members of the
// submit itself are refused.
func workParams(flags, cmdParams []string, req submitRequest) (map[string]string, error) {
	reserved := map[string]bool{"command": true, "subcommand": true, "node": true, "worktype": true,
		"tlsclient": req.TLSClient != "", "ttl": req.TTL != "", "signwork": req.SignWork}
	params := map[string]string{}
	for _, p := range flags {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, usageError(fmt.Errorf("--param %q: want key=value", p))
		}
		params[k] = v
	}
	if len(cmdParams) > 0 {
		all := []string{}
		if p, ok := params["params"]; ok {
			all = append(all, p)
		}
		params["params"] = strings.Join(append(all, cmdParams...), " ")
	}
	for k, v := range params {
		if reserved[k] {
			return nil, usageError(fmt.Errorf("Duplicate or illegal parameter %s", k)) //nolint:staticcheck // receptorctl's text
		}
		if strings.HasPrefix(v, "@") && !strings.HasPrefix(v, "@@") {
			b, err := os.ReadFile(v[1:])
			if errors.Is(err, os.ErrNotExist) {
				return nil, usageError(fmt.Errorf("%s does not exist", v[1:]))
			}
			if err != nil {
				return nil, usageError(fmt.Errorf("could not read from file %s", v[1:]))
			}
			params[k] = string(b)
		}
	}
	return params, nil
}
