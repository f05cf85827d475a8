using System.CommandLine;
using PeftWorkbench.Cli.Commands;

// `peft`: one entry point; each command group lives in its own file under Commands/.
// First thing: the native settings (OpenMP wait policy, malloc, MKL path) must precede libtorch's first use,
// also in the kernel and notebook children this process hosts.
PeftWorkbench.Training.NativeTuning.Apply();
var root = new RootCommand("PeftWorkbench: parameter-efficient fine-tuning of Vision Transformers (Mai et al., CVPR 2025) on TorchSharp.");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(VitCommand.Create());
CheckpointCommand.AddTo(root);
root.Subcommands.Add(KernelCommand.Create());
root.Subcommands.Add(NotebooksCommand.Create());
foreach (var c in DataCommand.Create()) root.Subcommands.Add(c);
root.Subcommands.Add(PretrainCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(TrainCommand.CreateProfiles());
foreach (var c in SweepCommand.Create()) root.Subcommands.Add(c);
root.Subcommands.Add(ResultsCommand.Create());
root.Subcommands.Add(AnalyzeCommand.Create());
PeftCommand.AddTo(root);
// `peft bench` and its subcommands: the benchmarks of src/PeftWorkbench.Bench.
var bench = BenchCommand.Create();
BenchSweepCommand.AddTo(bench);
BenchIoCommand.AddTo(bench);
root.Subcommands.Add(bench);
return root.Parse(args).Invoke();
