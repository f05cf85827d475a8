using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using PeftWorkbench.Kernel.Notebooks;

namespace PeftWorkbench.Cli.Commands;

/// <summary>`peft notebooks run`: executes notebooks headless and writes executed .ipynb and HTML.</summary>
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
        run.SetAction(r => Cli.Guard(() =>
        {
            var p = r.GetValue(profile)!;
            Environment.SetEnvironmentVariable("PEFT_PROFILE", p);
            var seconds = r.GetValue(cellTimeout);
            if (seconds < 0 || double.IsNaN(seconds) || seconds > TimeSpan.MaxValue.TotalSeconds / 2) throw new ArgumentException($"--cell-timeout {seconds}: give seconds > 0, or 0 for no limit");
            TimeSpan? limit = seconds > 0 ? TimeSpan.FromSeconds(seconds) : null;
            var (notebookPaths, @out, kernelName) = (r.GetValue(paths)!, r.GetValue(outDir)!, r.GetValue(kernel)!);
            if (notebookPaths.FirstOrDefault(nb => !File.Exists(nb)) is { } missing) { Console.Error.WriteLine($"notebooks run: {missing}: no such file"); return 2; }
            NotebookRunner.CheckRun(notebookPaths, p); // before the first cell: the profile, the names, each notebook's shape
            bool child = r.GetValue(statusFile) is not null; // one notebook for a parent, which writes the index
            var entries = new List<IndexEntry>();
            int exit = 0;
            foreach (var nb in notebookPaths)
            {
                var started = DateTime.UtcNow;
                var clock = Stopwatch.StartNew();
                var code = kernelName == "dotnet-interactive" ? RunDotNetInteractive(nb, @out, p)
                    : r.GetValue(inProcess) ? RunHere(nb, @out, p, r.GetValue(statusFile), limit) : RunInChild(nb, @out, p, seconds);
                if (child) return code;
                entries.Add(Entry(nb, @out, p, kernelName, clock.Elapsed.TotalSeconds, code, started));
                Console.WriteLine($"{nb}: {(code == 0 ? "ok" : "FAILED")} in {clock.Elapsed.TotalSeconds:F1} s");
                if (code == 0) continue;
                exit = exit == 0 ? code : exit;
                if (!r.GetValue(keepGoing)) break;
            }
            Console.WriteLine($"index: {NotebookIndex.Write(@out, entries)}");
            return exit;
        }));
        notebooks.Subcommands.Add(run);
        return notebooks;
    }

    /// <summary>The index line of a notebook run: its executed notebook and HTML only if this run wrote them.</summary>
    static IndexEntry Entry(string notebook, string outDir, string profile, string kernel, double seconds, int code, DateTime started)
    {
        string? Fresh(string ext) => Path.Combine(outDir, Path.GetFileNameWithoutExtension(notebook) + ext) is var f && File.Exists(f)
            && File.GetLastWriteTimeUtc(f) >= started.AddSeconds(-1) ? f : null;
        return new IndexEntry(notebook, profile, kernel, seconds, code == 0, Fresh(".ipynb"), Fresh(".html"),
            code == 0 ? null : $"exit code {code}; no executed notebook was written (see the messages above)");
    }

    /// <summary>Cells run with the notebook's folder as the current directory, as under Jupyter.</summary>
    static int RunHere(string notebook, string outDir, string profile, string? statusFile, TimeSpan? cellTimeout)
    {
        var (fullNotebook, fullOut) = (Path.GetFullPath(notebook), Path.GetFullPath(outDir));
        var saved = Directory.GetCurrentDirectory();
        NotebookRunResult result;
        Directory.SetCurrentDirectory(Path.GetDirectoryName(fullNotebook)!);
        try { result = NotebookRunner.Run(fullNotebook, fullOut, profile, statusFile, cellTimeout: cellTimeout) with { Notebook = notebook }; }
        finally { Directory.SetCurrentDirectory(saved); }
        return Report(result);
    }

    /// <summary>Through Jupyter's client and .NET Interactive's kernelspec; the package comes from the local feed, so a
    /// missing feed is named before a kernel starts.</summary>
    static int RunDotNetInteractive(string notebook, string outDir, string profile)
    {
        if (LocalFeed.Problem() is { } problem) { Console.Error.WriteLine($"notebooks run: {problem}"); return 2; }
        return Report(JupyterClientRunner.Run(notebook, outDir, profile) with { Notebook = notebook });
    }

    static int Report(NotebookRunResult result)
    {
        if (result.Ok) return 0;
        Console.Error.WriteLine(result.Describe());
        if (result.ExecutedPath is not null) Console.Error.WriteLine($"  executed notebook: {result.ExecutedPath}");
        return 1;
    }

    /// <summary>One child process per notebook: a native abort (some libtorch errors end the process), a cell's
    /// Environment.Exit or a cell that ignores the timeout ends only the child, and the status file tells which cell
    /// was running. SIGTERM, SIGINT or SIGHUP to this process end the child too.</summary>
    static int RunInChild(string notebook, string outDir, string profile, double cellTimeout)
    {
        var status = Path.GetTempFileName();
        try
        {
            var argv = Cli.SelfCommand("notebooks", "run", Path.GetFullPath(notebook), "--profile", profile, "--out", Path.GetFullPath(outDir), "--in-process", "--status-file", status,
                "--cell-timeout", cellTimeout.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var psi = new ProcessStartInfo(argv[0]) { UseShellExecute = false };
            foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
            psi.Environment["PEFT_PROFILE"] = profile;
            using var child = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + argv[0]);
            void EndChild(PosixSignalContext _) { try { child.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }
            using (PosixSignalRegistration.Create(PosixSignal.SIGTERM, EndChild))
            using (PosixSignalRegistration.Create(PosixSignal.SIGINT, EndChild))
            using (PosixSignalRegistration.Create(PosixSignal.SIGHUP, EndChild))
                child.WaitForExit();
            var state = File.ReadAllText(status).Trim();
            // Ended: the child reported ok or the failing cell itself. No cell started: it reported its own error.
            if (state == NotebookRunner.StatusEnded || (state.Length == 0 && child.ExitCode is 0 or 1 or 2)) return child.ExitCode;
            var why = child.ExitCode switch
            {
                134 => "an abort: a native error (libtorch), a stack overflow or an exception on a thread of the cell",
                137 => "killed, e.g. by the out-of-memory killer",
                139 => "a segmentation fault",
                _ => "Environment.Exit in the cell, or a crash",
            };
            Console.Error.WriteLine($"{notebook}: cell {(state.Length > 0 ? state : "?")} failed: the notebook process ended before the notebook finished (exit code {child.ExitCode}: {why}); no executed notebook was written");
            return 1;
        }
        finally { File.Delete(status); }
    }
}
