package work_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/receptor-mesh/receptor/services/work"
	"github.com/receptor-mesh/receptor/services/work/command"
)

// A local work agent with one command work type, "cat": a unit is submitted
// with stdin, its stdout is read back to EOF (the reader follows the unit
// until it completes), and the unit is released.
//
// Command units run under a detached runner: the agent re-executes the
// running binary (or a receptor-runner binary next to it) with runner
// arguments, so a program that runs command units must hand those
// invocations to the runner first thing in main (this package's TestMain
// does just that for the test binary):
//
//	func main() {
//		if command.IsRunnerInvocation(os.Args[1:]) {
//			os.Exit(command.RunnerMain(os.Args[1:]))
//		}
//		...
//	}
func ExampleAgent_Submit() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)

	dataDir, err := os.MkdirTemp("", "work-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dataDir)

	cat, err := command.New(command.Config{WorkType: "cat", Command: "cat"},
		command.Options{Logger: quiet, RunnerOutput: os.Stderr})
	if err != nil {
		panic(err)
	}
	agent, err := work.New(work.Options{
		NodeID:    "node1",
		DataDir:   dataDir,
		WorkTypes: []work.WorkType{work.CommandType(cat)},
		Logger:    quiet,
		// Mesh is nil: this agent runs local units only (a remote submit
		// fails). receptor-worker passes worker.MeshDialer, which
		// reaches the mesh through the router's MeshService.
	})
	if err != nil {
		panic(err)
	}
	defer agent.Close()

	// Node is this agent's node ID for a local unit ("localhost" also works).
	res, err := agent.Submit(ctx, work.SubmitRequest{Node: "node1", WorkType: "cat"},
		strings.NewReader("hello from stdin\n"))
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Result)

	results, err := agent.Results(ctx, res.UnitID, 0, work.Auth{})
	if err != nil {
		panic(err)
	}
	out, err := io.ReadAll(results)
	results.Close()
	if err != nil {
		panic(err)
	}
	fmt.Printf("stdout: %s", out)

	st, err := agent.Status(res.UnitID)
	if err != nil {
		panic(err)
	}
	fmt.Printf("state: %s, %d bytes\n", st.StateName, st.StdoutSize)

	// Release deletes the unit's directory.
	if _, err := agent.Release(ctx, res.UnitID, false, work.Auth{}); err != nil {
		panic(err)
	}

	// Output:
	// Job Started
	// stdout: hello from stdin
	// state: Succeeded, 17 bytes
}
