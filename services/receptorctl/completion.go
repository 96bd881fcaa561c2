package receptorctl

import (
	"github.com/spf13/cobra"
)

func init() { addVerb("", newCompletionCmd) }

func newCompletionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script for bash, zsh or fish.",
		Long: `Print the shell completion script. For example:
  bash:  source <(receptorctl completion bash)
  zsh:   receptorctl completion zsh > "${fpath[1]}/_receptorctl"
  fish:  receptorctl completion fish > ~/.config/fish/completions/receptorctl.fish
Unit IDs complete from the node's work list when --socket or --grpc is set.`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			out := a.stdio.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			default:
				return root.GenFishCompletion(out, true)
			}
		},
	}
}
