using System.CommandLine;
using NetMQ;
using PeftWorkbench.Kernel.Protocol;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft kernel install` registers the Jupyter kernelspec; `peft kernel run -f FILE` is what Jupyter starts.</summary>
public static class KernelCommand
{
    /// <summary>`peft kernel run` ended itself to stop an interrupted cell that ignored Cancellation.</summary>
    public const int AbandonedCellExitCode = 3;

    public static Command Create()
    {
        var kernel = new Command("kernel", "The C# Jupyter kernel with the workbench preloaded.");

        var user = new Option<bool>("--user") { Description = "Install for this user (~/.local/share/jupyter/kernels; the default)." };
        var prefix = new Option<string?>("--prefix") { Description = "Install into PREFIX/share/jupyter/kernels (e.g. a virtual environment)." };
        var jupyterPath = new Option<string?>("--jupyter-path") { Description = "Install into DIR/kernels, for a directory on JUPYTER_PATH." };
        var name = new Option<string>("--name") { Description = "Kernelspec name.", DefaultValueFactory = _ => "peft-workbench" };
        var install = new Command("install", "Register the kernelspec \"C# (PeftWorkbench)\" for Jupyter, VS Code and nbclient.") { user, prefix, jupyterPath, name };
        install.SetAction(r => Cli.Guard(() =>
        {
            if (r.GetValue(prefix) is not null && r.GetValue(jupyterPath) is not null)
            {
                Console.Error.WriteLine("kernel install: give --prefix or --jupyter-path, not both.");
                return 2;
            }
            var dir = KernelSpec.KernelsDir(r.GetValue(prefix), r.GetValue(jupyterPath));
            var path = KernelSpec.Install(dir, Cli.SelfCommand("kernel", "run", "-f", "{connection_file}"), r.GetValue(name)!);
            Console.WriteLine($"Installed kernelspec {r.GetValue(name)} in {Path.GetDirectoryName(path)}");
            return 0;
        }));

        var file = new Option<string>("-f", "--connection-file") { Description = "The connection file Jupyter wrote.", Required = true };
        var run = new Command("run", "Serve one kernel on the channels of a connection file (Jupyter runs this).") { file };
        run.SetAction(r => Cli.Guard(() =>
        {
            var info = ConnectionInfo.Load(r.GetValue(file)!);
            bool abandoned;
            using (var k = new JupyterKernel(info)) { k.Run(); abandoned = k.AbandonedCell; }
            NetMQConfig.Cleanup(block: false);
            // Returning ends the process and with it the cell that ignored an interrupt; Jupyter restarts the kernel.
            return abandoned ? AbandonedCellExitCode : 0;
        }));

        var repeats = new Option<int>("--repeats") { Description = "Cells timed per kind.", DefaultValueFactory = _ => 10 };
        var bench = new Command("bench", "Start a kernel process like Jupyter does and time its start, first cell and typical cells.") { repeats };
        bench.SetAction(r => Cli.Guard(() => { PeftWorkbench.Bench.KernelBench.Run(Cli.SelfCommand(), r.GetValue(repeats), Console.WriteLine); return 0; }));

        kernel.Subcommands.Add(install);
        kernel.Subcommands.Add(run);
        kernel.Subcommands.Add(bench);
        return kernel;
    }
}
