namespace PeftWorkbench.Display;

/// <summary>
/// A run's progress line that says when the run was cut short, so a frozen line such as "[92/144 trials] ..." never
/// reads as a run still going. <see cref="Stopped"/> (called on cancellation: Interrupt in our kernel) and the end of the
/// process mid-run (.NET Interactive's Interrupt ends its kernel; whether its last message still reaches the front end
/// is up to that kernel) add what happened and what is kept to the last line shown.
/// A run does its work through <see cref="Run"/> (one step) or <see cref="Each"/> (items in turn, "[k/n] label" each),
/// which say an Interrupt on the line themselves, once; no caller writes a catch for it:
/// <code>
/// using var line = new StoppableProgress(progress);
/// line.Run(() => Prepare(line.Line, cancel), cancel);
/// return line.Each(items, i => i.Name, (i, step) => Train(i, step.Text, cancel), cancel);
/// </code>
/// A run nested in another (Regime's Study.RunAll per backbone and size) gets <see cref="Nested"/>: its own line shows
/// on the outer one, and whichever of the two ends first says the stop; the other then says nothing.
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

    /// <summary>The line to hand to a run's own progress (null when nobody shows one, so the run can skip its work).</summary>
    public Action<string>? Line => update is null ? null : Report;

    /// <summary>
    /// The progress to hand to a run nested in this one, which makes its own line of it: the nested line's text shows on
    /// this line after <paramref name="prefix"/>, and its stop (an Interrupt, the process ending) ends this line too, so
    /// that the stop is said once; a stop of this line that comes first silences the nested one's. Null when nobody shows
    /// a line.
    /// </summary>
    public Action<string>? Nested(string prefix) => update is null ? null : new Child(this, prefix).Report;

    /// <summary>Behind <see cref="Nested"/>: a StoppableProgress made over a nested line finds this as its delegate's
    /// target, and so ends its parent's line (which ends once) instead of writing a stop line of its own.</summary>
    sealed class Child(StoppableProgress parent, string prefix)
    {
        public void Report(string line) => parent.Report(prefix + line);
        public void End(string text) => parent.End(prefix + text);
    }

    /// <summary>
    /// Runs <paramref name="run"/> as one step of the run: an Interrupt (<see cref="OperationCanceledException"/> with
    /// <paramref name="cancel"/> cancelled) ends the line with <see cref="Stopped"/>, as in <see cref="Each"/>, and is
    /// rethrown; so is any other failure, the line left as it was. Study.RunAll's worker phase, before its Each.
    /// </summary>
    public void Run(Action run, CancellationToken cancel)
    {
        try { run(); }
        catch (Exception e)
        {
            SayIfInterrupted(e, cancel);
            throw;
        }
    }

    /// <summary>
    /// Runs <paramref name="items"/> in turn, each under the line "[k/n] label" (<paramref name="run"/> gets its
    /// <see cref="Step"/>: k, n and the bare label, and the line as <see cref="Step.Text"/>, to put its own progress after
    /// it). An Interrupt ends the line with <see cref="Stopped"/>; any failure disposes the results so far (those that are
    /// <see cref="IDisposable"/>) and rethrows: a caller gets all of them or none. The one loop behind Study.RunAll, the
    /// capacity sweep, the robustness finding and the regime finding. <paramref name="announce"/> false: the "[k/n] label"
    /// line is not shown (a run whose own lines are the progress, as notebook 05's robustness run shows them).
    /// </summary>
    public List<T> Each<TItem, T>(IReadOnlyList<TItem> items, Func<TItem, string> label, Func<TItem, Step, T> run, CancellationToken cancel,
        bool announce = true)
    {
        var done = new List<T>();
        try
        {
            foreach (var item in items)
            {
                cancel.ThrowIfCancellationRequested();
                var step = new Step(done.Count + 1, items.Count, label(item));
                if (announce) Report(step.Text);
                done.Add(run(item, step));
            }
            return done;
        }
        catch (Exception e)
        {
            SayIfInterrupted(e, cancel);
            foreach (var r in done) (r as IDisposable)?.Dispose();
            throw;
        }
    }

    /// <summary>What <see cref="Run"/> and <see cref="Each"/> do with a failure, before rethrowing it: an Interrupt ends
    /// the line (once: <see cref="Stopped"/>); anything else leaves it.</summary>
    void SayIfInterrupted(Exception e, CancellationToken cancel)
    {
        if (e is OperationCanceledException && cancel.IsCancellationRequested) Stopped("interrupted");
    }

    /// <summary>Item <paramref name="Number"/> of <paramref name="Count"/> in <see cref="Each"/>, with its bare
    /// <paramref name="Label"/>; <see cref="Text"/> is the line Each shows for it.</summary>
    public readonly record struct Step(int Number, int Count, string Label)
    {
        /// <summary>"[k/n]": what starts the item's line.</summary>
        public string Counter => $"[{Number}/{Count}]";

        /// <summary>"[k/n] label": the item's line.</summary>
        public string Text => $"{Counter} {Label}";
    }

    /// <summary>The last line, then why the run stopped and what is kept.</summary>
    public static string StoppedLine(string last, string why) => (last.Length > 0 ? last + " -- " : "") + $"stopped ({why}): {Kept}";

    /// <summary>Ends the line with <see cref="StoppedLine"/> (once; later calls do nothing, and so does a call after a
    /// <see cref="Nested"/> line ended this one).</summary>
    public void Stopped(string why) => End(StoppedLine(last, why));

    /// <summary>Writes the line that ends this one, unless it already ended; a nested line ends its parent's instead.</summary>
    void End(string text)
    {
        if (Interlocked.Exchange(ref ended, 1) != 0) return;
        if (update?.Target is Child parent) parent.End(text);
        else update?.Invoke(text);
    }

    void OnProcessExit(object? sender, EventArgs e) => Stopped("the kernel ended");

    public void Dispose()
    {
        Interlocked.Exchange(ref ended, 1);
        if (update is not null) AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
    }
}
