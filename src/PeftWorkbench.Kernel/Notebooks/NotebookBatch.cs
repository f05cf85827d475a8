using System.Diagnostics;
using System.Runtime.InteropServices;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Kernel.Notebooks;

/// <summary>What `peft notebooks run` was asked: the profile, the output folder, the kernel (workbench | dotnet-interactive),
/// in this process or one child per notebook, the status file a child reports to, the cell time limit, keep going.</summary>
public sealed record NotebookBatchOptions(string Profile, string OutDir, string Kernel = "workbench", bool InProcess = false,
    string? StatusFile = null, double CellTimeoutSeconds = 0, bool KeepGoing = false);

/// <summary>
/// `peft notebooks run`: notebooks executed headless one after another, each (by default) in a child process of the
/// `peft` CLI (<c>cli</c>) so that a native crash is reported, not fatal; then OUT/index.html and index.md. Returns the
/// exit code: 0, the first failure's code, or 2 for bad input found before the first cell.
/// </summary>
public static class NotebookBatch
{
    public static int Run(IReadOnlyList<string> notebooks, NotebookBatchOptions o, IReadOnlyList<string>? cli, TextWriter log, TextWriter err)
    {
        Environment.SetEnvironmentVariable("PEFT_PROFILE", o.Profile);
        var seconds = o.CellTimeoutSeconds;
        if (seconds < 0 || double.IsNaN(seconds) || seconds > TimeSpan.MaxValue.TotalSeconds / 2) throw new ArgumentException($"--cell-timeout {seconds}: give seconds > 0, or 0 for no limit");
        TimeSpan? limit = seconds > 0 ? TimeSpan.FromSeconds(seconds) : null;
        if (notebooks.FirstOrDefault(nb => !File.Exists(nb)) is { } missing) { err.WriteLine($"notebooks run: {missing}: no such file"); return 2; }
        NotebookRunner.CheckRun(notebooks, o.Profile); // before the first cell: the profile, the names, each notebook's shape
        var backbone = PeftWorkbench.Workbench.Backbone; // $PEFT_BACKBONE, checked here too: the index records verdicts under it
        bool child = o.StatusFile is not null; // one notebook for a parent, which writes the index
        var entries = new List<IndexEntry>();
        int exit = 0;
        foreach (var nb in notebooks)
        {
            var started = DateTime.UtcNow;
            var clock = Stopwatch.StartNew();
            var code = o.Kernel == "dotnet-interactive" ? RunDotNetInteractive(nb, o.OutDir, o.Profile, err)
                : o.InProcess || cli is null ? RunHere(nb, o.OutDir, o.Profile, o.StatusFile, limit, err) : RunInChild(cli, nb, o.OutDir, o.Profile, seconds, err);
            if (child) return code;
            entries.Add(Entry(nb, o.OutDir, o.Profile, o.Kernel, clock.Elapsed.TotalSeconds, code, started));
            log.WriteLine($"{nb}: {(code == 0 ? "ok" : "FAILED")} in {clock.Elapsed.TotalSeconds:F1} s");
            if (code == 0) continue;
            exit = exit == 0 ? code : exit;
            if (!o.KeepGoing) break;
        }
        log.WriteLine($"index: {NotebookIndex.Write(o.OutDir, entries, backbone, err.WriteLine)}");
        return exit;
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
    static int RunHere(string notebook, string outDir, string profile, string? statusFile, TimeSpan? cellTimeout, TextWriter err)
    {
        var (fullNotebook, fullOut) = (Path.GetFullPath(notebook), Path.GetFullPath(outDir));
        var saved = Directory.GetCurrentDirectory();
        NotebookRunResult result;
        Directory.SetCurrentDirectory(Path.GetDirectoryName(fullNotebook)!);
        try { result = NotebookRunner.Run(fullNotebook, fullOut, profile, statusFile, cellTimeout: cellTimeout) with { Notebook = notebook }; }
        finally { Directory.SetCurrentDirectory(saved); }
        return Report(result, err);
    }

    /// <summary>Through Jupyter's client and .NET Interactive's kernelspec; the package comes from the local feed, so a
    /// missing feed is named before a kernel starts.</summary>
    static int RunDotNetInteractive(string notebook, string outDir, string profile, TextWriter err)
    {
        if (LocalFeed.Problem() is { } problem) { err.WriteLine($"notebooks run: {problem}"); return 2; }
        return Report(JupyterClientRunner.Run(notebook, outDir, profile) with { Notebook = notebook }, err);
    }

    static int Report(NotebookRunResult result, TextWriter err)
    {
        if (result.Ok) return 0;
        err.WriteLine(result.Describe());
        if (result.ExecutedPath is not null) err.WriteLine($"  executed notebook: {result.ExecutedPath}");
        return 1;
    }

    /// <summary>One child process per notebook: a native abort (some libtorch errors end the process), a cell's
    /// Environment.Exit or a cell that ignores the timeout ends only the child, and the status file tells which cell
    /// was running. SIGTERM, SIGINT or SIGHUP to this process end the child too.</summary>
    static int RunInChild(IReadOnlyList<string> cli, string notebook, string outDir, string profile, double cellTimeout, TextWriter err)
    {
        var status = Path.GetTempFileName();
        try
        {
            var psi = PeftCommandLine.StartInfo(cli, "notebooks", "run", Path.GetFullPath(notebook), "--profile", profile, "--out", Path.GetFullPath(outDir),
                "--in-process", "--status-file", status, "--cell-timeout", cellTimeout.ToString(System.Globalization.CultureInfo.InvariantCulture));
            psi.Environment["PEFT_PROFILE"] = profile;
            using var child = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + cli[0]);
            void EndChild(PosixSignalContext _) { try { child.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }
            using (PosixSignalRegistration.Create(PosixSignal.SIGTERM, EndChild))
            using (PosixSignalRegistration.Create(PosixSignal.SIGINT, EndChild))
            using (PosixSignalRegistration.Create(PosixSignal.SIGHUP, EndChild))
                child.WaitForExit();
            var state = File.ReadAllText(status).Trim();
            // Ended: the child reported ok or the failing cell itself. No cell started: it reported its own error.
            if (state == NotebookRunner.StatusEnded || (state.Length == 0 && child.ExitCode is 0 or 1 or 2)) return child.ExitCode;
            err.WriteLine($"{notebook}: cell {(state.Length > 0 ? state : "?")} failed: the notebook process ended before the notebook finished " +
                $"(exit code {child.ExitCode}: {ExitReason(child.ExitCode)}); no executed notebook was written");
            return 1;
        }
        finally { File.Delete(status); }
    }

    /// <summary>What a notebook child's exit code says about how it ended.</summary>
    public static string ExitReason(int exitCode) => exitCode switch
    {
        134 => "an abort: a native error (libtorch), a stack overflow or an exception on a thread of the cell",
        137 => "killed, e.g. by the out-of-memory killer",
        139 => "a segmentation fault",
        _ => "Environment.Exit in the cell, or a crash",
    };
}
