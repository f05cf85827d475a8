using PeftWorkbench.Training;

namespace PeftWorkbench.Display;

/// <summary>
/// Training progress in a notebook, on either kernel: the progress bar's line (<see cref="ConsoleProgressBar.Format"/>)
/// redrawn in place through a display handle, at most every <c>minInterval</c> and at every epoch's end and the run's.
/// <code>
/// var bar = display("training ...");
/// Trainer.Fit(model, train, val, options, new NotebookProgress(bar.Update), Cancellation);
/// </code>
/// (Our kernel's display() returns a DisplayHandle, .NET Interactive's extension a DisplayedValue; both have Update.)
/// </summary>
public sealed class NotebookProgress(Action<string> update, string label = "", TimeSpan? minInterval = null) : IProgress<TrainProgress>
{
    readonly ConsoleProgressBar bar = new(label, TextWriter.Null, inPlace: false);
    readonly TimeSpan interval = minInterval ?? TimeSpan.FromMilliseconds(250);
    DateTime last = DateTime.MinValue;

    public void Report(TrainProgress p)
    {
        bool boundary = p.Phase is "done" or "diverged" or "cancelled" or "eval" || p.Step == p.StepsPerEpoch;
        var now = DateTime.UtcNow;
        if (!boundary && now - last < interval) return;
        last = now;
        update(bar.Format(p));
    }
}
