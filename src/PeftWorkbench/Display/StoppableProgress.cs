namespace PeftWorkbench.Display;

/// <summary>
/// A run's progress line that says when the run was cut short, so a frozen line such as "[92/144 trials] ..." never
/// reads as a run still going. <see cref="Stopped"/> (called on cancellation: Interrupt in our kernel) and the end of the
/// process mid-run (.NET Interactive's Interrupt ends its kernel; whether its last message still reaches the front end
/// is up to that kernel) add what happened and what is kept to the last line shown.
/// <code>
/// using var line = new StoppableProgress(progress);
/// try { ... line.Report("[3/12] mnist lora"); ... } catch (OperationCanceledException) { line.Stopped("interrupted"); throw; }
/// </code>
/// </summary>
public sealed class StoppableProgress : IDisposable
{
    public const string Kept = "finished trials stay in the store; run the cell again to resume";

    readonly Action<string>? update;
    string last = "";
    int ended; // 1 once stopped, disposed or the process ends: the line is written at most once more

    public StoppableProgress(Action<string>? update)
    {
        this.update = update;
        if (update is not null) AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
    }

    /// <summary>Shows a line (and remembers it, to say where the run stopped).</summary>
    public void Report(string line)
    {
        last = line;
        update?.Invoke(line);
    }

    /// <summary>The last line, then why the run stopped and what is kept.</summary>
    public static string StoppedLine(string last, string why) => (last.Length > 0 ? last + " -- " : "") + $"stopped ({why}): {Kept}";

    /// <summary>Ends the line with <see cref="StoppedLine"/> (once; later calls do nothing).</summary>
    public void Stopped(string why)
    {
        if (Interlocked.Exchange(ref ended, 1) == 0) update?.Invoke(StoppedLine(last, why));
    }

    void OnProcessExit(object? sender, EventArgs e) => Stopped("the kernel ended");

    public void Dispose()
    {
        Interlocked.Exchange(ref ended, 1);
        if (update is not null) AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
    }
}
