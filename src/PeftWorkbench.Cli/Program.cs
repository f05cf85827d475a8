using System.CommandLine;
using PeftWorkbench.Cli.Commands;

// `peft`: one entry point; each command group lives in its own file under Commands/.
var root = new RootCommand("PeftWorkbench: parameter-efficient fine-tuning of Vision Transformers (Mai et al., CVPR 2025) on TorchSharp.");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(VitCommand.Create());
foreach (var c in TrainCommand.Create()) root.Subcommands.Add(c);
foreach (var c in DataCommand.Create()) root.Subcommands.Add(c);
PeftCommand.AddTo(root);
return root.Parse(args).Invoke();
