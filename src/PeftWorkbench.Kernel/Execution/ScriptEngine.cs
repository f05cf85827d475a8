using System.Diagnostics;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Scripting;
using Microsoft.CodeAnalysis.Scripting;
using PeftWorkbench.Kernel.Display;

namespace PeftWorkbench.Kernel.Execution;

/// <summary>How a cell ended.</summary>
public enum CellStatus { Ok, Error, Interrupted }

/// <summary>A finished cell: its value (when the cell ends in an expression) or its error.</summary>
public sealed record CellResult(CellStatus Status, Dictionary<string, string>? Value = null,
    string ErrorName = "", string ErrorValue = "", IReadOnlyList<string>? Traceback = null)
{
    public IReadOnlyList<string> TracebackLines => Traceback ?? Array.Empty<string>();
}

/// <summary>One persistent C# session: each cell continues the Roslyn script state of the last one. Shared by the
/// Jupyter kernel and the headless notebook runner.</summary>
public sealed partial class ScriptEngine
{
    /// <summary>How long an interrupted cell may take to stop on its own before the engine stops waiting for it.</summary>
    public TimeSpan InterruptGrace { get; set; } = TimeSpan.FromSeconds(2);
    internal static ScriptEngine? LastActive { get; private set; }

    public IOutputSink Sink { get; }
    public KernelGlobals Globals { get; }
    public Formatters Formatters { get; } = new();
    public PackageCatalog Packages { get; } = new();
    public string BaseDirectory { get; }

    readonly ScriptOptions options;
    ScriptState<object>? state;
    readonly object runLock = new();
    CancellationTokenSource? running;
    int displayCounter;

    public ScriptEngine(IOutputSink sink, string? baseDirectory = null, string? profile = null)
    {
        ConsoleRouter.Install();
        Sink = sink;
        BaseDirectory = Path.GetFullPath(baseDirectory ?? Directory.GetCurrentDirectory());
        Globals = new KernelGlobals(this, profile ?? (Environment.GetEnvironmentVariable("PEFT_PROFILE") is { Length: > 0 } p ? p : "default"));
        options = DefaultOptions(BaseDirectory);
    }

    /// <summary>Every assembly the host loaded from its deps (framework, workbench, TorchSharp, ...) as references, and
    /// the workbench's namespaces as usings. Assemblies, not bare file names: see shared ENVIRONMENT notes.</summary>
    static ScriptOptions DefaultOptions(string baseDirectory)
    {
        var anchors = new[]
        {
            typeof(object), typeof(Enumerable), typeof(Console), typeof(List<>), typeof(Stopwatch), typeof(System.Text.RegularExpressions.Regex),
            typeof(TorchSharp.torch), typeof(Workbench), typeof(Microsoft.Data.Analysis.DataFrame), typeof(XPlot.Plotly.Chart),
            typeof(KernelGlobals), typeof(Microsoft.DotNet.Interactive.Formatting.Formatter),
        }.Select(t => t.Assembly);
        var tpa = (AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Where(p => p.EndsWith(".dll", StringComparison.OrdinalIgnoreCase));
        var anchorPaths = anchors.Select(a => a.Location).ToHashSet();
        var references = anchors.Distinct().Select(a => MetadataReference.CreateFromFile(a.Location))
            .Concat(tpa.Where(p => !anchorPaths.Contains(p)).Select(p => MetadataReference.CreateFromFile(p)));

        var imports = PeftWorkbench.Display.NotebookImports.Namespaces.Append("PeftWorkbench.Kernel");

        return ScriptOptions.Default
            .WithReferences(references)
            .WithImports(imports)
            .WithMetadataResolver(ScriptMetadataResolver.Default.WithBaseDirectory(baseDirectory))
            .WithSourceResolver(new SourceFileResolver(Array.Empty<string>(), baseDirectory))
            .WithAllowUnsafe(true)
            .WithEmitDebugInformation(false);
    }

    /// <summary>Compiles and runs an empty submission with torch touched, so the user's first cell does not pay for it.</summary>
    public void WarmUp()
    {
        lock (runLock)
            state ??= CSharpScript.RunAsync<object>("TorchSharp.torch.get_num_threads()", options, Globals, typeof(KernelGlobals)).GetAwaiter().GetResult();
    }

    /// <summary>Cancels the running cell's token (the interrupt button). Safe to call from any thread.</summary>
    public void Interrupt()
    {
        var cts = Volatile.Read(ref running);
        // Asynchronously: callbacks a cell registered on its token must not run on (and block) the caller's thread.
        try { cts?.CancelAsync(); }
        catch (ObjectDisposedException) { }
    }

    public bool IsRunning => Volatile.Read(ref running) is not null;

    /// <summary>True while a cell the engine stopped waiting for (interrupted, ignoring Cancellation) still runs on its
    /// thread. .NET cannot abort it: only the end of the process stops it.</summary>
    public bool AbandonedCellRunning => Volatile.Read(ref abandoned) is { IsCompleted: false };
    Task? abandoned;

    public CellResult Execute(string code) => Execute(code, CancellationToken.None);

    /// <summary>Runs one cell. Never throws for the cell's own faults: they come back as an error result and the session
    /// state stays as it was before the failing statement.</summary>
    public CellResult Execute(string code, CancellationToken cancel)
    {
        lock (runLock)
        {
            LastActive = this;
            Directives.Parsed parsed;
            try { parsed = Directives.Parse(code, Packages); }
            catch (DirectiveException e) { return new CellResult(CellStatus.Error, null, "DirectiveError", e.Message, new[] { "DirectiveError: " + e.Message }); }

            // Interrupted while waiting for the previous cell or the warm-up: do not start.
            if (cancel.IsCancellationRequested) return Interrupted("the cell was interrupted before it started");
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            var cell = new CellContext(this, cts.Token);
            Volatile.Write(ref running, cts);
            var clock = Stopwatch.StartNew();
            try
            {
                var previous = CellContext.Current;
                CellContext.Current = cell; // flows into the task below, and into tasks and threads the cell starts
                Task<ScriptState<object>> run;
                try { run = Task.Run(() => Continue(parsed.Code)); }
                finally { CellContext.Current = previous; }
                return Wait(run, cell, cts, parsed.Time, clock);
            }
            finally
            {
                Volatile.Write(ref running, null);
                cell.Flush();
            }
        }
    }

    Task<ScriptState<object>> Continue(string code) =>
        state is null
            ? CSharpScript.Create<object>(code, options, typeof(KernelGlobals)).RunAsync(Globals, catchException: _ => true)
            : state.ContinueWithAsync<object>(code, options, catchException: _ => true);

    CellResult Wait(Task<ScriptState<object>> run, CellContext cell, CancellationTokenSource cts, bool time, Stopwatch clock)
    {
        try { run.Wait(cts.Token); }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            // Interrupted: give cooperative code (loops that watch Cancellation) a moment to stop.
            if (!run.Wait(InterruptGrace))
            {
                cell.Flush();
                cell.Detached = true;
                Volatile.Write(ref abandoned, run);
                // What happens to it next is the host's to say (the kernel ends its process; a headless run ends its child).
                return Interrupted("the cell did not stop within " + InterruptGrace.TotalSeconds +
                    " s: it ignores Cancellation (pass `Cancellation` to long loops)");
            }
        }
        catch (AggregateException) { } // inspected below
        if (time) cell.Write("stdout", $"Wall time: {clock.Elapsed.TotalMilliseconds:F1} ms\n");

        if (run.IsFaulted)
        {
            var e = run.Exception!.InnerException ?? run.Exception;
            if (e is CompilationErrorException ce) return CompileError(ce);
            return RuntimeError(e, cts);
        }
        var next = run.Result;
        state = next; // a failing cell still keeps the variables it assigned before the exception
        if (next.Exception is { } thrown) return RuntimeError(thrown, cts);
        if (cts.IsCancellationRequested) return Interrupted("the cell stopped on Cancellation");
        var value = next.ReturnValue;
        bool hasValue = value is not null && value is not DisplayHandle;
        return new CellResult(CellStatus.Ok, hasValue ? Formatters.Format(value) : null);
    }

    static CellResult Interrupted(string why) =>
        new(CellStatus.Interrupted, null, "KeyboardInterrupt", "interrupted: " + why, new[] { "KeyboardInterrupt: " + why });

    static CellResult CompileError(CompilationErrorException e)
    {
        var lines = e.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d =>
        {
            var at = d.Location.GetLineSpan().StartLinePosition;
            return $"(line {at.Line + 1}, column {at.Character + 1}): error {d.Id}: {d.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}";
        }).ToList();
        if (lines.Count == 0) lines.Add(e.Message);
        return new CellResult(CellStatus.Error, null, "CompilationError", lines[0], lines);
    }

    static CellResult RuntimeError(Exception e, CancellationTokenSource cts)
    {
        while (e is TargetInvocationException or AggregateException && e.InnerException is not null) e = e.InnerException!;
        if (e is OperationCanceledException && cts.IsCancellationRequested) return Interrupted("the cell stopped on Cancellation");
        return new CellResult(CellStatus.Error, null, e.GetType().Name, e.Message, Traceback(e));
    }

    /// <summary>The exception, its inner exceptions, and the stack frames that belong to the user and the libraries
    /// (not Roslyn's script runner, the kernel, or async plumbing).</summary>
    internal static List<string> Traceback(Exception e)
    {
        var lines = new List<string>();
        for (var x = e; x is not null; x = x.InnerException)
        {
            lines.Add((x == e ? "" : "---> ") + $"{x.GetType().FullName}: {x.Message}");
            foreach (var frame in (x.StackTrace ?? "").Split('\n').Select(f => f.TrimEnd()))
            {
                if (frame.Length == 0 || frame.Contains("Microsoft.CodeAnalysis.Scripting") || frame.Contains("PeftWorkbench.Kernel.Execution")
                    || frame.Contains("System.Runtime.CompilerServices") || frame.Contains("System.Threading.") || frame.Contains("--- End of stack trace"))
                    continue;
                var shown = SubmissionFrame().Replace(frame, m => "at cell " + m.Groups[1].Value);
                lines.Add(shown);
                if (lines.Count > 30) { lines.Add("   ..."); break; }
            }
        }
        return lines;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"at Submission#(\d+)\.\S*")]
    private static partial System.Text.RegularExpressions.Regex SubmissionFrame();

    // ---- display -----------------------------------------------------------------------------------------

    internal DisplayHandle Display(object? value)
    {
        var id = $"peft-display-{Interlocked.Increment(ref displayCounter)}-{Guid.NewGuid():N}"[..32];
        FlushCurrentCell();
        Sink.Display(Formatters.Format(value), id, update: false);
        return new DisplayHandle(this, id);
    }

    internal void UpdateDisplay(string displayId, object? value)
    {
        FlushCurrentCell();
        Sink.Display(Formatters.Format(value), displayId, update: true);
    }

    /// <summary>Keeps text printed before a display above it.</summary>
    static void FlushCurrentCell() => CellContext.Current?.Flush();
}
