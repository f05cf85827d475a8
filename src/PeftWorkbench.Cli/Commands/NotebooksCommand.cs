using System.CommandLine;
using PeftWorkbench.Kernel.Notebooks;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft notebooks run`: executes notebooks headless and writes executed .ipynb and HTML (<see cref="NotebookBatch"/>).</summary>
public static class NotebooksCommand
{
    public static Command Create()
    {
        var notebooks = new Command("notebooks", "Run the workbench's notebooks without a Jupyter server.");
        var paths = new Argument<string[]>("notebooks") { Description = "Notebook files (.ipynb).", Arity = ArgumentArity.OneOrMore };
        var profile = new Option<string>("--profile") { Description = string.Join(" | ", PeftWorkbench.Training.TrainOptions.Profiles) + " (sets Profile and PEFT_PROFILE).", DefaultValueFactory = _ => Environment.GetEnvironmentVariable("PEFT_PROFILE") is { Length: > 0 } p ? p : "default" };
        var outDir = new Option<string>("--out") { Description = "Folder for the executed notebooks and their HTML.", Required = true };
        var kernel = new Option<string>("--kernel") { Description = "workbench (ours, in-process Roslyn; the default) | dotnet-interactive (.NET Interactive through Jupyter's client and the .net-csharp kernelspec that environment/setup.sh installs).", DefaultValueFactory = _ => "workbench" };
        kernel.AcceptOnlyFromAmong("workbench", "dotnet-interactive");
        var inProcess = new Option<bool>("--in-process") { Description = "Run in this process (default: one child process per notebook, so a native crash is reported, not fatal)." };
        var statusFile = new Option<string?>("--status-file") { Hidden = true };
        var cellTimeout = new Option<double>("--cell-timeout") { Description = "Seconds a cell may run before it is interrupted and reported as failed (0: no limit; workbench kernel only)." };
        var keepGoing = new Option<bool>("--keep-going") { Description = "Run every notebook even after one fails (the exit code is still 1)." };
        var run = new Command("run", "Execute notebooks; stop with a non-zero exit at the first failing cell. Writes OUT/index.html and index.md: " +
            "per notebook its HTML, profile, wall time and the line its `finding` cell printed.") { paths, profile, outDir, kernel, inProcess, statusFile, cellTimeout, keepGoing };
        run.SetAction(r => Cli.Guard(() => NotebookBatch.Run(r.GetValue(paths)!, new NotebookBatchOptions(r.GetValue(profile)!, r.GetValue(outDir)!, r.GetValue(kernel)!,
            r.GetValue(inProcess), r.GetValue(statusFile), r.GetValue(cellTimeout), r.GetValue(keepGoing)), Cli.SelfCommand(), Console.Out, Console.Error)));
        notebooks.Subcommands.Add(run);
        return notebooks;
    }
}
