namespace PeftWorkbench.Training;

/// <summary>
/// A one-line progress bar for <see cref="Trainer.Fit"/> on a terminal: redrawn in place at most every
/// <c>minInterval</c>; when output is redirected (logs, CI) it prints one line per epoch instead.
/// Reports arrive synchronously on the training thread (this is not <see cref="Progress{T}"/>, which would queue them).
/// </summary>
public sealed class ConsoleProgressBar : IProgress<TrainProgress>
{
    readonly TextWriter writer;
    readonly bool inPlace;
    readonly TimeSpan minInterval;
    readonly string label;
    DateTime lastDraw = DateTime.MinValue;
    int width = 0;
    string? pending;
    long printedStep = -1, pendingStep;

    public ConsoleProgressBar(string label = "", TextWriter? writer = null, bool? inPlace = null, TimeSpan? minInterval = null)
    {
        this.label = label;
        this.writer = writer ?? Console.Out;
        this.inPlace = inPlace ?? (writer is null && !Console.IsOutputRedirected);
        this.minInterval = minInterval ?? TimeSpan.FromMilliseconds(100);
    }

    public void Report(TrainProgress p)
    {
        bool final = p.Phase is "done" or "diverged" or "cancelled";
        bool epochEnd = p.Step == p.StepsPerEpoch && p.Phase == "train" || p.Phase == "eval";
        if (!inPlace)
        {
            // One line per epoch: its eval line if it has one, else its last step's line (held until we know).
            if (p.Phase == "eval") { pending = null; Print(Format(p), p.GlobalStep); return; }
            if (pending is not null) { Print(pending, pendingStep); pending = null; }
            // A run that ended normally right after an eval line has nothing new to say.
            if (final && !(p.Phase == "done" && printedStep == p.GlobalStep)) Print(Format(p), p.GlobalStep);
            else if (epochEnd && !final) { pending = Format(p); pendingStep = p.GlobalStep; }
            return;
        }
        var now = DateTime.UtcNow;
        if (!final && !epochEnd && now - lastDraw < minInterval) return;
        lastDraw = now;
        string line = Format(p);
        writer.Write("\r" + line.PadRight(width));
        width = line.Length;
        if (final) writer.WriteLine();
        writer.Flush();
    }

    void Print(string line, long globalStep)
    {
        writer.WriteLine(line);
        printedStep = globalStep;
    }

    public string Format(TrainProgress p)
    {
        const int barWidth = 20;
        double frac = p.TotalSteps == 0 ? 1 : (double)p.GlobalStep / p.TotalSteps;
        int filled = (int)Math.Round(frac * barWidth);
        string bar = new string('#', filled) + new string('.', barWidth - filled);
        string eval = p.EvalTop1 is double t ? $"  eval {t:F1}%" : "";
        string tag = p.Phase is "diverged" or "cancelled" ? $"  [{p.Phase}]" : "";
        string prefix = label.Length > 0 ? label + " " : "";
        return $"{prefix}[{bar}] epoch {p.Epoch + 1}/{p.Epochs} step {p.Step}/{p.StepsPerEpoch}  loss {p.Loss:F4}  lr {p.Lr:0.0e+0}  {p.ImagesPerSecond:F0} img/s  {p.ElapsedSeconds:F1}s{eval}{tag}";
    }
}
