package receptorctl

// The node verbs: ping, traceroute, reload, version.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/receptor-mesh/receptor/services/internal/buildinfo"
)

func init() {
	addVerb("", newPingCmd)
	addVerb("", newTracerouteCmd)
	addVerb("", newReloadCmd)
	addVerb("", newVersionCmd)
}

func newPingCmd(a *app) *cobra.Command {
	var count int
	var delay float64
	cmd := &cobra.Command{
		Use:   "ping NODE",
		Short: "Ping a Receptor node.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			be, _, err := a.backend(ctx)
			if err != nil {
				return err
			}
			failed := false
			for i := range count {
				r, err := be.Ping(ctx, args[0])
				if err != nil {
					return err
				}
				if a.machine() {
					if err := a.emit(r, true); err != nil {
						return err
					}
				}
				if ok, _ := r["Success"].(bool); ok {
					if !a.machine() {
						a.println(fmt.Sprintf("Reply from %s in %s", str(r["From"]), str(r["TimeStr"])))
					}
				} else {
					failed = true
					if !a.machine() {
						msg := str(r["Error"])
						if _, ok := r["From"]; ok {
							if _, ok := r["TimeStr"]; ok {
								msg += fmt.Sprintf(" from %s in %s", str(r["From"]), str(r["TimeStr"]))
							}
						}
						fmt.Fprintf(a.stdio.Err, "ERROR: %s\n", msg)
					}
				}
				if i < count-1 {
					select {
					case <-time.After(time.Duration(delay * float64(time.Second))):
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			if failed {
				// The Python receptorctl's code, whatever the cause: scripts test for 2.
				return &exitError{code: ExitPingFailed, err: errors.New("ping failed"), quiet: true}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&count, "count", 4, "Number of pings to send")
	cmd.Flags().Float64Var(&delay, "delay", 1.0, "Time to wait between pings")
	return cmd
}

func newTracerouteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "traceroute NODE",
		Short: "Do a traceroute to a Receptor node.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			be, _, err := a.backend(ctx)
			if err != nil {
				return err
			}
			res, err := be.Traceroute(ctx, args[0])
			if err != nil {
				return err
			}
			hops := make([]int, 0, len(res))
			for k := range res {
				n, err := strconv.Atoi(k)
				if err != nil {
					return fmt.Errorf("traceroute reply has a hop %q", k)
				}
				hops = append(hops, n)
			}
			slices.Sort(hops)
			code := 0
			for _, n := range hops {
				h, _ := res[strconv.Itoa(n)].(map[string]any)
				if a.machine() {
					item := map[string]any{"Hop": n}
					for k, v := range h {
						item[k] = v
					}
					if err := a.emit(item, true); err != nil {
						return err
					}
				}
				if e, ok := h["Error"]; ok {
					if code = textClass(str(e)); code == 0 {
						code = ExitError
					}
					if !a.machine() {
						fmt.Fprintf(a.stdio.Err, "ERROR: %d: Error %s from %s in %s\n", n, str(e), str(h["From"]), str(h["TimeStr"]))
					}
				} else if !a.machine() {
					a.println(fmt.Sprintf("%d: %s in %s", n, str(h["From"]), str(h["TimeStr"])))
				}
			}
			if code != 0 {
				return &exitError{code: code, err: errors.New("traceroute failed"), quiet: true}
			}
			return nil
		},
	}
}

func newReloadCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Reload receptor configuration.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := a.ctx(cmd)
			be, _, err := a.backend(ctx)
			if err != nil {
				return err
			}
			r, err := be.Reload(ctx)
			if err != nil {
				return err
			}
			if a.machine() {
				if err := a.emit(r, false); err != nil {
					return err
				}
			}
			if ok, _ := r["Success"].(bool); ok {
				if !a.machine() {
					a.println("Reload successful")
				}
				return nil
			}
			msg := str(r["Error"])
			code := ExitReload5
			switch {
			case containsCode(msg, 3):
				code = ExitReload3
			case containsCode(msg, 4):
				code = ExitReload4
			}
			if !a.machine() {
				fmt.Fprintf(a.stdio.Err, "ERROR: %s\n", msg)
			}
			return &exitError{code: code, err: errors.New(msg), quiet: true}
		},
	}
}

// containsCode reports whether a reload error says "ERRORCODE <n>", the
// test receptorctl makes.
func containsCode(msg string, n int) bool {
	return strings.Contains(msg, fmt.Sprintf("ERRORCODE %d", n))
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show version information for receptorctl and the receptor node",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := a.ctx(cmd)
			_, nodeVersion, err := a.backend(ctx)
			if err != nil {
				return err
			}
			ours := buildinfo.Get().Version
			if a.machine() {
				return a.emit(map[string]any{"receptorctl": ours, "receptor": nodeVersion}, false)
			}
			a.println("receptorctl  " + ours)
			a.println("receptor     " + nodeVersion)
			return nil
		},
	}
}
