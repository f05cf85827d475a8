namespace PeftWorkbench.Tuning;

/// <summary>
/// How much of a run trained in this call and how much was read back from its store: a notebook's last progress line
/// says which, so that a fresh store never reads "read from the store" and a finished one never "trained".
/// </summary>
public readonly record struct RunTally(int TrainedNow, int ReadBack, string What = "trials")
{
    /// <summary>The distinct trials behind <paramref name="runs"/> (tune trials, the refit that gives val logits, the
    /// final), by when each finished: at or after <paramref name="sinceUtc"/> means trained in this call (workers
    /// included: they record their trials in the same store). A key is a trial within its store: the same key in two
    /// stores (notebook 07 keeps one per backbone) is two trials.</summary>
    public static RunTally Of(IEnumerable<StudyRun> runs, DateTime sinceUtc)
    {
        var trials = runs.SelectMany(r => r.Tuning.Append(r.Final).Concat(r.Val is { } v ? new[] { v } : Array.Empty<TrialRecord>())
                .Select(t => (r.Store, Trial: t)))
            .DistinctBy(x => (x.Store, x.Trial.Key)).Select(x => x.Trial).ToList();
        int now = trials.Count(t => t.FinishedUtc >= sinceUtc);
        return new RunTally(now, trials.Count - now);
    }

    public override string ToString() => (TrainedNow, ReadBack) switch
    {
        (0, 0) => $"no {What}",
        (_, 0) => $"all {TrainedNow} {What} trained now",
        (0, _) => $"all {ReadBack} {What} read from the store",
        _ => $"{TrainedNow} {What} trained now, {ReadBack} read from the store",
    };
}
