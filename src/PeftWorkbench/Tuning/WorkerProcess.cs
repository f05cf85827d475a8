namespace PeftWorkbench.Tuning;

/// <summary>
/// A worker process: runs a sweep manifest's open trials until none is left (<see cref="Sweep.RunWorker"/>). The
/// library is its own worker program: this assembly has an entry point (<see cref="Main"/>), so a host that loaded it
/// (a notebook kernel, a test) starts workers from the library's own files, found beside its assembly
/// (<see cref="PeftCommandLine.Worker"/>), not through PATH. `peft worker` is the same entry behind the CLI's parser.
/// </summary>
public static class WorkerProcess
{
    /// <summary>The verb and options a worker is started with, whichever program runs it (the CLI parses the same words).</summary>
    public const string Verb = "worker", ManifestOption = "--manifest", QuietOption = "--quiet";

    /// <summary>A worker's exit status when its parent ended (no one reads it then; it tells a log apart from a signal).</summary>
    public const int ParentGoneExitCode = 3;

    /// <summary>The arguments after the program: what <see cref="Main"/> and `peft worker` accept.</summary>
    public static string[] Arguments(string manifestPath, bool quiet = true, bool exitWithParent = true) =>
        new[] { Verb, ManifestOption, manifestPath }.Concat(quiet ? new[] { QuietOption } : Array.Empty<string>())
            .Concat(exitWithParent ? new[] { ParentWatch.Flag } : Array.Empty<string>()).ToArray();

    /// <summary>Runs the manifest's open trials in this process; returns the exit status (0, or 128 + a signal, or
    /// <see cref="ParentGoneExitCode"/>). With <paramref name="exitWithParent"/>, stops when stdin closes.</summary>
    public static int Run(string manifestPath, bool quiet, bool exitWithParent, CancellationToken cancel = default)
    {
        var manifest = SweepManifest.Load(manifestPath);
        using var term = new Termination(cancel);
        if (exitWithParent) ParentWatch.Start(() => term.Stop("the process that started this worker ended", ParentGoneExitCode));
        try
        {
            int ran = Sweep.RunWorker(manifest, Study.Environment, null, quiet ? null : Console.Out, term.Token);
            if (!quiet) Console.WriteLine($"worker {Environment.ProcessId}: ran {ran} trial(s)");
            return 0;
        }
        catch (OperationCanceledException) when (term.Stopped) { return term.ExitCode; }
    }

    /// <summary>The library run as a program: exactly the words <see cref="Arguments"/> makes (it is started by the
    /// library itself, never typed; a person types `peft worker`). Bad input: one line on stderr, exit 2, as the CLI.</summary>
    public static int Main(string[] args)
    {
        int at = Array.IndexOf(args, ManifestOption);
        if (args.FirstOrDefault() != Verb || at < 0 || at + 1 >= args.Length
            || args.Where((a, i) => i > 0 && i != at && i != at + 1).Any(a => a is not (QuietOption or ParentWatch.Flag)))
        {
            Console.Error.WriteLine($"usage: {Verb} {ManifestOption} PATH [{QuietOption}] [{ParentWatch.Flag}] (got: {string.Join(' ', args)})");
            return 2;
        }
        try { return Run(args[at + 1], args.Contains(QuietOption), args.Contains(ParentWatch.Flag)); }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or System.Text.Json.JsonException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}
