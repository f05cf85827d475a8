using Microsoft.Data.Analysis;
using PeftWorkbench.Checkpoints;
using PeftWorkbench.Tuning;
using static TorchSharp.torch;

namespace PeftWorkbench.Analysis;

/// <summary>
/// One method's predictions on one split of one task: logits [N, C] (row-major) and labels [N], with what every
/// analysis reads from them: softmax confidence (max probability), predicted label (argmax, first on ties) and
/// correctness. <see cref="Source"/> names where they came from (a store file, or "arrays"), for error messages.
/// </summary>
public sealed class MethodPredictions
{
    public string Method { get; }
    public string Task { get; }
    public string Split { get; }
    public string Source { get; }
    public int Count { get; }
    public int NumClasses { get; }
    public float[] Logits { get; }
    public long[] Labels { get; }
    /// <summary>Softmax probabilities, row-major [N, C] (computed in double for stable sums).</summary>
    public double[] Probabilities { get; }
    public int[] Predicted { get; }
    public double[] Confidence { get; }
    public bool[] Correct { get; }
    /// <summary>Top-1 accuracy in percent.</summary>
    public double Top1 { get; }

    public MethodPredictions(string method, string task, string split, float[] logits, long[] labels, int numClasses, string source = "arrays")
    {
        if (numClasses <= 0) throw new ArgumentException($"{source}: {method} on {task}: logits have {numClasses} classes.");
        if (logits.Length != labels.Length * numClasses)
            throw new ArgumentException($"{source}: {method} on {task} ({split}): {logits.Length} logits do not make [{labels.Length}, {numClasses}] for {labels.Length} labels.");
        // NaN or infinite logits (a diverged run, a damaged file) would rank as arbitrary predictions: refuse them.
        for (int j = 0; j < logits.Length; j++)
            if (!float.IsFinite(logits[j]))
                throw new ArgumentException($"{source}: {method} on {task} ({split}): logit {logits[j]} at sample {j / numClasses}, class {j % numClasses} is not finite " +
                    $"({logits.Count(x => !float.IsFinite(x))} of {logits.Length} are not); predictions must be finite to be compared.");
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] < 0 || labels[i] >= numClasses)
                throw new ArgumentException($"{source}: {method} on {task} ({split}): label {labels[i]} at sample {i} is outside 0..{numClasses - 1}.");
        (Method, Task, Split, Source, Count, NumClasses, Logits, Labels) = (method, task, split, source, labels.Length, numClasses, logits, labels);
        Probabilities = new double[logits.Length];
        Predicted = new int[Count];
        Confidence = new double[Count];
        Correct = new bool[Count];
        int correct = 0;
        for (int i = 0; i < Count; i++)
        {
            var row = logits.AsSpan(i * numClasses, numClasses);
            int arg = 0;
            for (int c = 1; c < numClasses; c++) if (row[c] > row[arg]) arg = c;
            double max = row[arg], sum = 0;
            for (int c = 0; c < numClasses; c++) sum += Probabilities[i * numClasses + c] = Math.Exp(row[c] - max);
            for (int c = 0; c < numClasses; c++) Probabilities[i * numClasses + c] /= sum;
            Predicted[i] = arg;
            Confidence[i] = 1 / sum; // exp(0) / sum: the argmax's probability
            if (Correct[i] = arg == labels[i]) correct++;
        }
        Top1 = Count == 0 ? 0 : 100.0 * correct / Count;
    }

    /// <summary>From a [N, C] array of logits (hand-made cases, tests).</summary>
    public static MethodPredictions FromArrays(string method, string task, float[,] logits, long[] labels, string split = "test")
    {
        int n = logits.GetLength(0), c = logits.GetLength(1);
        if (n != labels.Length) throw new ArgumentException($"arrays: {method} on {task} ({split}): {n} rows of logits but {labels.Length} labels.");
        var flat = new float[n * c];
        Buffer.BlockCopy(logits, 0, flat, 0, flat.Length * sizeof(float));
        return new MethodPredictions(method, task, split, flat, labels, c);
    }

    /// <summary>From tensors: logits [N, C] (any float dtype) and labels [N].</summary>
    public static MethodPredictions FromTensors(string method, string task, Tensor logits, Tensor labels, string split = "test", string source = "tensors")
    {
        if (logits.dim() != 2 || labels.dim() != 1)
            throw new ArgumentException($"{source}: {method} on {task}: logits must be [N, C] and labels [N], got [{string.Join(", ", logits.shape)}] and [{string.Join(", ", labels.shape)}].");
        using var scope = NewDisposeScope();
        return new MethodPredictions(method, task, split, logits.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray(),
            labels.to(ScalarType.Int64).cpu().data<long>().ToArray(), (int)logits.shape[1], source);
    }

    /// <summary>Samples as a table: index, label, predicted, confidence, correct.</summary>
    public DataFrame ToDataFrame() => new(
        new PrimitiveDataFrameColumn<int>("index", Enumerable.Range(0, Count)),
        new PrimitiveDataFrameColumn<long>("label", Labels),
        new PrimitiveDataFrameColumn<int>("predicted", Predicted),
        new PrimitiveDataFrameColumn<double>("confidence", Confidence),
        new PrimitiveDataFrameColumn<bool>("correct", Correct));

    public override string ToString() => $"{Method} on {Task} ({Split}): {Count} samples, {NumClasses} classes, top-1 {Top1:F2} %";
}

/// <summary>
/// Several methods' predictions on one split of one task, aligned by sample index: same task, same sample count,
/// same labels in the same order, each method once. Load from a results store (the BRIEF contract: finals hold
/// test logits; the selected tune trial, whose config equals the final's with phase "tune", holds val logits),
/// or build from arrays.
/// </summary>
public sealed class Predictions
{
    public string Task { get; }
    public string Split { get; }
    public IReadOnlyList<MethodPredictions> Methods { get; }
    public long[] Labels => Methods[0].Labels;
    public int Count => Methods[0].Count;
    public IReadOnlyList<string> Names => Methods.Select(m => m.Method).ToList();

    public MethodPredictions this[string method] =>
        Methods.FirstOrDefault(m => m.Method == method)
        ?? throw new ArgumentException($"No predictions for method '{method}' on task '{Task}' ({Split}). Methods: {string.Join(", ", Names)}.");

    public Predictions(IEnumerable<MethodPredictions> methods)
    {
        Methods = methods.ToList();
        if (Methods.Count == 0) throw new ArgumentException("Predictions: no methods given.");
        var first = Methods[0];
        (Task, Split) = (first.Task, first.Split);
        var seen = new HashSet<string>();
        foreach (var m in Methods)
        {
            if (!seen.Add(m.Method)) throw new ArgumentException($"Method '{m.Method}' is named twice on task '{Task}' ({m.Source}).");
            if (m.Task != Task) throw new ArgumentException($"{m.Source}: {m.Method} is on task '{m.Task}', {first.Method} on '{Task}': one task at a time.");
            if (m.Split != Split) throw new ArgumentException($"{m.Source}: {m.Method} on {Task} is split '{m.Split}', {first.Method} is '{Split}'.");
            if (m.Count != first.Count)
                throw new ArgumentException($"{m.Source}: {m.Method} on {Task} has {m.Count} samples, {first.Method} ({first.Source}) has {first.Count}.");
            if (m.NumClasses != first.NumClasses)
                throw new ArgumentException($"{m.Source}: {m.Method} on {Task} has {m.NumClasses} classes, {first.Method} ({first.Source}) has {first.NumClasses}.");
            for (int i = 0; i < m.Count; i++)
                if (m.Labels[i] != first.Labels[i])
                    throw new ArgumentException($"{m.Source}: {m.Method} on {Task}: labels differ from {first.Method}'s ({first.Source}) at sample {i} " +
                        $"({m.Labels[i]} vs {first.Labels[i]}): the samples are not in the same order.");
        }
    }

    public static Predictions FromArrays(params MethodPredictions[] methods) => new(methods);

    /// <summary>Only <paramref name="methods"/>, in that order (each once).</summary>
    public Predictions Select(IEnumerable<string> methods)
    {
        var list = methods.ToList();
        var dup = list.GroupBy(m => m).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"Method '{dup.Key}' is named twice (task '{Task}').");
        return new(list.Select(m => this[m]));
    }

    /// <summary>Per method: top-1, mean confidence, sample count.</summary>
    public DataFrame Summary() => new(
        new StringDataFrameColumn("method", Methods.Select(m => m.Method)),
        new PrimitiveDataFrameColumn<double>("top1", Methods.Select(m => m.Top1)),
        new PrimitiveDataFrameColumn<double>("mean_confidence", Methods.Select(m => m.Confidence.Average())),
        new PrimitiveDataFrameColumn<int>("samples", Methods.Select(m => m.Count)));

    /// <summary>
    /// Predictions of every method with a successful final trial on <paramref name="task"/> in the store at
    /// <paramref name="storeDir"/>. split "test": the finals' test logits; "val": the val200 logits of a model trained
    /// like each final (<see cref="SelectedVal"/>: after a rung, the selected configuration's full run on train800,
    /// else its tune trial). <paramref name="methods"/> limits (and orders) the methods; <paramref name="profile"/>
    /// picks one profile and <paramref name="seed"/> one seed when the store holds several.
    /// </summary>
    public static Predictions Load(string storeDir, string task, string split = "test", IEnumerable<string>? methods = null, string? profile = null, long? seed = null)
    {
        var finals = StoreFinals(storeDir, profile, seed).Where(r => r.Config.Task == task).ToList();
        if (finals.Count == 0)
            throw new ArgumentException($"Results store {storeDir}: no successful final trial on task '{task}'{Selection(profile, seed)}. " +
                $"Tasks there: {string.Join(", ", StoreFinals(storeDir, profile, seed).Select(r => r.Config.Task).Distinct())}.");
        var wanted = methods?.ToList() ?? finals.Select(r => r.Config.Method).Distinct().ToList();
        var dup = wanted.GroupBy(m => m).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"Method '{dup.Key}' is named twice (task '{task}').");
        var records = ReadRecords(storeDir);
        var loaded = new List<MethodPredictions>();
        foreach (var method in wanted)
        {
            var mine = finals.Where(r => r.Config.Method == method).ToList();
            if (mine.Count == 0)
            {
                // The store skips a record whose predictions file is gone (or that is otherwise invalid): name it.
                var skipped = new ResultsStore(storeDir).Read().Invalid.Where(l => l.Reason.Contains($"/{task}/{method}/final/", StringComparison.Ordinal))
                    .Select(l => $" Line {l.Line} of {Path.Combine(storeDir, "trials.jsonl")} was skipped: {l.Reason}.");
                throw new ArgumentException($"Results store {storeDir}: method '{method}' on task '{task}' has no successful final trial." +
                    string.Concat(skipped) + $" Methods there: {string.Join(", ", finals.Select(r => r.Config.Method).Distinct())}.");
            }
            if (mine.Count > 1)
                throw new ArgumentException($"Results store {storeDir}: method '{method}' on task '{task}' has {mine.Count} finals " +
                    $"(profile/seed {string.Join(", ", mine.Select(r => $"{r.Config.Profile}/{r.Config.Seed}"))}): pass profile and seed to pick one.");
            var record = split switch
            {
                "test" => mine[0],
                "val" => SelectedVal(records, mine[0]) ?? throw new ArgumentException(
                    $"Results store {storeDir}: method '{method}' on task '{task}': no tune trial '{(mine[0].Config with { Phase = "tune" }).Key}' (the selected one) in trials.jsonl."),
                _ => throw new ArgumentException($"split must be 'test' or 'val', got '{split}'."),
            };
            loaded.Add(ReadFile(storeDir, record, split));
        }
        return new Predictions(loaded);
    }

    /// <summary>
    /// Predictions of exactly the runs <see cref="Study.RunAll"/> returned on <paramref name="task"/> (their seed and
    /// profile, whatever else the store holds): split "test" reads each final's test logits, "val" its selected tune
    /// trial's val logits (<see cref="StudyRun.Val"/>: trained like the final). Methods in the runs' order.
    /// </summary>
    public static Predictions FromRuns(IEnumerable<StudyRun> runs, string task, string split = "test")
    {
        var all = runs.ToList();
        var mine = all.Where(r => r.Task == task).ToList();
        if (mine.Count == 0)
            throw new ArgumentException($"No runs on task '{task}'; the runs are on {string.Join(", ", all.Select(r => r.Task).Distinct())}.");
        return new Predictions(mine.Select(r => ReadFile(r.Store, split switch
        {
            "test" => r.Final,
            "val" => r.Val ?? throw new ArgumentException($"Results store {r.Store}: method '{r.Method}' on task '{task}' has no selected configuration trained like the final (val logits)."),
            _ => throw new ArgumentException($"split must be 'test' or 'val', got '{split}'."),
        }, split)));
    }

    /// <summary>The successful final trials of a store (found by phase, never by key), of one profile and one seed
    /// where given; only those trained on the whole train800 (notebook 07's smaller training sets share the notebooks'
    /// store, and an analysis of the study's protocol must not read them as more runs of the same method).</summary>
    public static IReadOnlyList<TrialRecord> StoreFinals(string storeDir, string? profile = null, long? seed = null) =>
        ReadRecords(storeDir).Where(r => r.Config.Phase == "final" && r.Ok && r.Config.TrainImages is null && (profile is null || r.Config.Profile == profile)
            && (seed is null || r.Config.Seed == seed)).ToList();

    /// <summary>" (profile P, seed S)" for messages; empty when neither is given.</summary>
    public static string Selection(string? profile, long? seed) =>
        profile is null && seed is null ? "" : $" ({string.Join(", ", new[] { profile is null ? null : $"profile {profile}", seed is null ? null : $"seed {seed}" }.OfType<string>())})";

    /// <summary>The val200 predictions that stand for a final: its val refit (after a rung, the selected configuration trained
    /// for the whole schedule on train800, phase "val", same tune-grid digest) when the store has one, else the selected
    /// tune trial (grids tuned without a rung, where it already trained the whole schedule).</summary>
    public static TrialRecord? SelectedVal(IReadOnlyList<TrialRecord> records, TrialRecord final)
    {
        var key = (final.Config with { Phase = "val" }).Key;
        return records.FirstOrDefault(r => r.Key == key && r.Ok) ?? SelectedTune(records, final);
    }

    /// <summary>The selected tune trial of a final: the tune record whose config equals the final's with phase "tune".</summary>
    public static TrialRecord? SelectedTune(IEnumerable<TrialRecord> records, TrialRecord final)
    {
        var key = (final.Config with { Phase = "tune" }).Key;
        return records.FirstOrDefault(r => r.Key == key);
    }

    static IReadOnlyList<TrialRecord> ReadRecords(string storeDir)
    {
        if (!File.Exists(Path.Combine(storeDir, "trials.jsonl")))
            throw new DirectoryNotFoundException($"{storeDir} is not a results store: it has no trials.jsonl.");
        return new ResultsStore(storeDir).Records();
    }

    /// <summary>The predictions one trial record saved in its store (split names what they are of: "test" or "val").</summary>
    internal static MethodPredictions ReadFile(string storeDir, TrialRecord record, string split)
    {
        var (method, task) = (record.Config.Method, record.Config.Task);
        if (record.Predictions is null)
            throw new ArgumentException($"Results store {storeDir}: method '{method}' on task '{task}' ({split}) saved no predictions " +
                $"(trial {record.Key} in {Path.Combine(storeDir, "trials.jsonl")}; tune trials recorded before tune trials saved their val logits: rerun them).");
        var path = Path.Combine(storeDir, record.Predictions);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Results store {storeDir}: method '{method}' on task '{task}' ({split}): predictions file {path} is missing.", path);
        var file = SafetensorsFile.Open(path);
        if (!file.Entries.ContainsKey("logits") || !file.Entries.ContainsKey("labels"))
            throw new InvalidDataException($"{path}: method '{method}' on task '{task}': needs tensors 'logits' and 'labels', has {string.Join(", ", file.Keys)}.");
        using var logits = file.Read("logits");
        using var labels = file.Read("labels");
        return MethodPredictions.FromTensors(method, task, logits, labels, split, path);
    }
}
