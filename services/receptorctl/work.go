package receptorctl

// work list, cancel and release; the unit selection they share.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func init() {
	addVerb("work", newWorkListCmd)
	addVerb("work", newWorkCancelCmd)
	addVerb("work", newWorkReleaseCmd)
}

// stateNames are the unit states by code (State in a status object).
var stateNames = []string{"Pending", "Running", "Succeeded", "Failed", "Canceled"}

// parseStates reads --state values (repeatable, comma-separated,
// case-insensitive) into canonical state names.
func parseStates(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			i := slices.IndexFunc(stateNames, func(n string) bool { return strings.EqualFold(n, s) })
			if i < 0 {
				return nil, usageError(fmt.Errorf("unknown state %q: want one of %s", s, strings.Join(stateNames, ", ")))
			}
			out = append(out, stateNames[i])
		}
	}
	return out, nil
}

// filterStates keeps the units in one of states (all when states is empty).
func filterStates(units map[string]any, states []string) map[string]any {
	if len(states) == 0 {
		return units
	}
	out := make(map[string]any, len(units))
	for id, v := range units {
		st, _ := v.(map[string]any)
		if slices.Contains(states, str(st["StateName"])) {
			out[id] = v
		}
	}
	return out
}

func newWorkListCmd(a *app) *cobra.Command {
	var quiet bool
	var node, unitID, tlsClient string
	var states []string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List known units of work.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			sel, err := parseStates(states)
			if err != nil {
				return err
			}
			ctx := a.ctx(cmd)
			be, _, err := a.backend(ctx)
			if err != nil {
				return err
			}
			units, err := be.WorkList(ctx, node, tlsClient, unitID)
			if err != nil {
				return err
			}
			units = filterStates(units, sel)
			switch {
			case quiet && a.machine():
				ids := make([]any, 0, len(units))
				for _, id := range sortedKeys(units) {
					ids = append(ids, id)
				}
				return a.emit(ids, false)
			case quiet:
				for _, id := range sortedKeys(units) {
					a.println(id)
				}
			case a.machine():
				return a.emit(units, false)
			case a.output == "table":
				rows := make([][]string, 0, len(units))
				for _, id := range sortedKeys(units) {
					st, _ := units[id].(map[string]any)
					rows = append(rows, []string{id, str(st["StateName"]), str(st["WorkType"]), str(st["StdoutSize"]), str(st["Detail"])})
				}
				a.table([]string{"UNIT ID", "STATE", "WORK TYPE", "STDOUT SIZE", "DETAIL"}, rows)
			default:
				a.println(pyJSON(units))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "Only list unit IDs with no detail")
	f.StringVar(&node, "node", "", "Receptor node to list work from. Defaults to the local node.")
	f.StringVar(&unitID, "unit_id", "", "Only show detail for a specific unit id")
	f.StringVar(&tlsClient, "tls-client", "", "TLS client config name used when connecting to remote node")
	f.StringSliceVar(&states, "state", nil, "Only units in these states (Pending, Running, Succeeded, Failed, Canceled; repeatable or comma-separated)")
	_ = cmd.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(stateNames, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// opOnUnits runs op on each unit as receptorctl does: "(<value>, <key>)"
// of each reply (e.g. "(abc, released)"); the first failure ends the run
// with "<id>: ERROR: <text>". Machine output: each reply as a stream item.
func (a *app) opOnUnits(ctx context.Context, be backend, op string, ids []string) error {
	for _, id := range ids {
		r, err := be.UnitOp(ctx, op, id)
		if err != nil {
			code := exitCode(err, ExitError)
			if a.machine() {
				a.printError(fmt.Errorf("%s: %s", id, errorText(err)), code)
			} else {
				fmt.Fprintf(a.stdio.Err, "ERROR: %s: ERROR: %s\n", id, errorText(err))
			}
			return &exitError{code: code, err: err, quiet: true}
		}
		if a.machine() {
			if err := a.emit(r, true); err != nil {
				return err
			}
			continue
		}
		if keys := sortedKeys(r); len(keys) > 0 {
			a.println(fmt.Sprintf("(%s, %s)", pyStr(r[keys[0]]), keys[0]))
		}
	}
	return nil
}

func (a *app) warnNoUnits() {
	fmt.Fprintln(a.stdio.Err, "Warning: No unit IDs supplied: Not doing anything")
}

func newWorkCancelCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "cancel [UNIT_IDS]...",
		Short:             "Cancel (kill) one or more units of work.",
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: a.completeUnits,
		RunE: func(cmd *cobra.Command, ids []string) error {
			ctx := a.ctx(cmd)
			be, _, err := a.backend(ctx) // connects first, as receptorctl does
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				a.warnNoUnits()
				return nil
			}
			if !a.machine() {
				a.println("Cancelled:")
			}
			return a.opOnUnits(ctx, be, "cancel", ids)
		},
	}
}

func newWorkReleaseCmd(a *app) *cobra.Command {
	var force, all, failed, succeeded bool
	var states []string
	var olderThan time.Duration
	cmd := &cobra.Command{
		Use:   "release [UNIT_IDS]...",
		Short: "Release (delete) one or more units of work.",
		Long: `Release (delete) one or more units of work: the IDs given, or every unit (--all), or the
units in the states selected by --failed, --succeeded and --state (bulk cleanup).
--older-than DURATION keeps, of those (or of every unit when no state is selected),
the units whose status last changed longer ago than DURATION; it needs --grpc (the
receptorctl socket protocol reports no time per unit).`,
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: a.completeUnits,
		RunE: func(cmd *cobra.Command, ids []string) error {
			sel, err := parseStates(states)
			if err != nil {
				return err
			}
			if failed {
				sel = append(sel, "Failed")
			}
			if succeeded {
				sel = append(sel, "Succeeded")
			}
			if olderThan < 0 {
				return usageError(fmt.Errorf("--older-than %s: want a positive duration", olderThan))
			}
			byAge := olderThan > 0
			bulk := all || len(sel) > 0 || byAge
			if bulk && len(ids) > 0 {
				return usageError(errors.New("give unit IDs or a selection (--all, --failed, --succeeded, --state, --older-than), not both"))
			}
			if byAge && a.grpcAddr == "" {
				return usageError(errors.New("--older-than needs the node's gRPC API: give --grpc ADDRESS (the receptorctl socket protocol reports no time per unit)"))
			}
			ctx := a.ctx(cmd)
			be, _, err := a.backend(ctx) // connects first, as receptorctl does
			if err != nil {
				return err
			}
			if len(ids) == 0 && !bulk {
				a.warnNoUnits()
				return nil
			}
			op := "release"
			if force {
				op = "force-release"
			}
			if bulk {
				var units map[string]any
				var updated map[string]time.Time
				if byAge {
					g, ok := be.(*grpcBackend)
					if !ok {
						return usageError(errors.New("--older-than needs --grpc"))
					}
					units, updated, err = g.workListUpdated(ctx)
				} else {
					units, err = be.WorkList(ctx, "", "", "")
				}
				if err != nil {
					return err
				}
				units = filterStates(units, sel)
				if byAge {
					units = filterOlder(units, updated, time.Now().Add(-olderThan))
				}
				ids = sortedKeys(units)
			}
			if !a.machine() {
				a.println("Released:")
			}
			return a.opOnUnits(ctx, be, op, ids)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&force, "force", false, "Delete locally even if we can't reach the remote node")
	f.BoolVar(&all, "all", false, "Delete all work units")
	f.BoolVar(&failed, "failed", false, "Delete the units that failed")
	f.BoolVar(&succeeded, "succeeded", false, "Delete the units that succeeded")
	f.StringSliceVar(&states, "state", nil, "Delete the units in these states (repeatable or comma-separated)")
	f.DurationVar(&olderThan, "older-than", 0, "Only units whose status last changed longer ago than this (e.g. 24h; with the state flags: both must hold; needs --grpc)")
	_ = cmd.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(stateNames, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// filterOlder keeps the units whose status last changed before cutoff; a
// unit without a known time is kept out (its age is unknown).
func filterOlder(units map[string]any, updated map[string]time.Time, cutoff time.Time) map[string]any {
	out := make(map[string]any, len(units))
	for id, v := range units {
		if t, ok := updated[id]; ok && t.Before(cutoff) {
			out[id] = v
		}
	}
	return out
}

// completeUnits completes unit IDs from the node's work list, when the
// flags already given reach one.
func (a *app) completeUnits(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ctx := a.ctx(cmd)
	be, _, err := a.backend(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	units, err := be.WorkList(ctx, "", "", "")
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]cobra.Completion, 0, len(units))
	for _, id := range sortedKeys(units) {
		st, _ := units[id].(map[string]any)
		out = append(out, cobra.CompletionWithDesc(id, str(st["StateName"])+" "+str(st["WorkType"])))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
