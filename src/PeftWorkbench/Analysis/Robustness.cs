using Microsoft.Data.Analysis;
using System.Diagnostics;
using PeftWorkbench.Data;
using PeftWorkbench.Peft;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Analysis;

/// <summary>
/// The study's Figure 1c on the mini suite: the shipped backbone's upstream head reads MNIST digits zero-shot (its
/// outputs 0-9), as CLIP's text head reads ImageNet. Robustness runs fine-tune a method on MNIST starting from that
/// zero-shot head, so alpha 0 of the WiSE curve is exactly the zero-shot model; shifts are the real sklearn
/// digits and corrupted MNIST test sets.
/// </summary>
public static class Robustness
{
    public const string Task = "mnist";
    public static IReadOnlyList<string> DefaultShifts { get; } = new[] { "digits", "gaussian_noise-3", "gaussian_blur-3", "contrast-3" };

    /// <summary>A shipped ViT (null: <see cref="Workbench.DefaultBackbone"/>) with its head cut to the 10 digit outputs: the zero-shot digit classifier
    /// (every shipped head starts with the characters, outputs 0-9 the digits).</summary>
    public static VisionTransformer ZeroShotModel(string? backbone = null)
    {
        var vit = VisionTransformer.Pretrained(backbone ?? Workbench.DefaultBackbone);
        vit.KeepHeadRows(10);
        return vit;
    }

    /// <summary>The protocol name of a robustness fine-tuning's trial records (tuning.json in its folder).</summary>
    public const string TrialProtocol = "robustness";
    /// <summary>Kept beside a robustness run's curve.json when its lr was selected: the tune trials it was selected from.</summary>
    public const string TuningFile = "tuning.json";

    /// <summary>A fine-tuned robustness model: the method on the zero-shot ViT, and the zero-shot head it started from.</summary>
    public sealed record Run(PeftModel Model, HeadSnapshot ZeroShotHead) : IDisposable
    {
        public void Dispose() { Model.Dispose(); ZeroShotHead.Dispose(); }
    }

    /// <summary>A robustness fine-tuning selected over an lr grid: the selected model and the tune trials it was chosen from.</summary>
    public sealed record Tuned(Run Run, IReadOnlyList<TrialRecord> Tuning, TrialRecord Selected) : IDisposable
    {
        public void Dispose() => Run.Dispose();
    }

    /// <summary>How a robustness fine-tuning chooses its lr: over <paramref name="Lrs"/> on val200, as VTAB-1K's tune trials
    /// (records of <paramref name="Profile"/>, ties broken by <paramref name="TieBreak"/>).</summary>
    /// <summary>What a robustness run of <paramref name="Method"/> was selected from (null: no selection, or none kept), and
    /// whether its curve was read from the store rather than trained now.</summary>
    public sealed record MethodTuning(string Method, IReadOnlyList<TrialRecord>? Trials, bool FromStore);

    public sealed record LrSelection(IReadOnlyList<double> Lrs, string Profile = "default", TieBreak TieBreak = TieBreak.FewestParameters);

    /// <summary>Attaches <paramref name="method"/> to the zero-shot model and trains it (head included) on
    /// <paramref name="train"/> (default: MNIST train800val200) with <paramref name="options"/> (default: the default
    /// profile's budget at lr 1e-3, wd 1e-4, seed 42): one lr, no selection (<see cref="FineTuneSelected"/> selects).
    /// It is the protocol's final at these hyperparameters (<see cref="Protocol.GivenFinal"/>, run by <see cref="Protocol.RunTrial"/>):
    /// trained as given, then scored once on MNIST test. A divergence or failure throws <see cref="InvalidOperationException"/>
    /// naming the lr (a hyperparameter the method does not know: <see cref="ArgumentException"/> before any image loads);
    /// cancellation throws <see cref="OperationCanceledException"/>.</summary>
    public static Run FineTune(string method, TrainOptions? options = null, IReadOnlyDictionary<string, string>? hp = null, ImageSet? train = null,
        IProgress<TrainProgress>? progress = null, CancellationToken cancel = default, string? backbone = null)
    {
        var opts = options ?? DefaultTraining;
        if (opts.StopAfterEpochs is int stop)
            throw new ArgumentException($"Robustness.FineTune trains the whole schedule; StopAfterEpochs ({stop}) is a tune trial's rung.", nameof(options));
        // Scored on test once, after the last epoch (FinalEvalEvery 0): the training is what its own loop trained before.
        // A linear probe: BackboneInTrainMode keeps the old path (every batch through the backbone in train mode) where the
        // backbone has stochastic layers; without them (the shipped backbones) RunTrial probes on cached eval-mode features,
        // the same features, and the trained head came out bit for bit the same (WiseTests).
        var o = new ProtocolOptions
        {
            Profile = "default", Protocol = TrialProtocol, Train = opts, Lrs = new[] { opts.Lr }, WeightDecays = new[] { opts.WeightDecay },
            DropPaths = new[] { 0.0 }, FinalEvalEvery = 0, LinearProbe = LinearProbePath.BackboneInTrainMode,
        };
        var config = Protocol.GivenFinal(Task, method, hp, o);
        Protocol.ValidateGrid(method, new[] { config.Hp }); // a bad hyperparameter is named before any image loads
        using var loaded = Suite.Mini.Load(Task);
        // A training set of the caller's (theirs to dispose) stands in for train800val200; the final still scores MNIST test.
        var task = train is null ? loaded : loaded with { Train800Val200 = train };
        HeadSnapshot? head = null; // the zero-shot head of the model being trained, until the run keeps it
        Run? kept = null;
        ModelFactory zeroShot = (c, _) =>
        {
            var run = Attach(method, c.Hp, c.Seed, backbone);
            head = run.ZeroShotHead;
            return new BuiltModel(run.Model, run.Model.TrainableParameterCountExcludingHead);
        };
        try
        {
            var record = Protocol.RunTrial(config, task, zeroShot, o, store: null, _ => progress, cancel, handOver: (built, r) =>
            {
                if (!r.Ok) return false;
                built.Model.eval();
                kept = new Run((PeftModel)built.Model, head!);
                return true;
            });
            return kept ?? throw new InvalidOperationException(record.Status == "diverged"
                ? $"robustness fine-tuning of {method} diverged (lr {opts.Lr})."
                : $"robustness fine-tuning of {method} failed (lr {opts.Lr}): {record.Error ?? record.Status}");
        }
        finally { if (kept is null) head?.Dispose(); } // RunTrial disposes the model it did not hand over
    }

    /// <summary>The zero-shot model with <paramref name="method"/> attached, and the zero-shot head it starts from (captured
    /// before attaching): what every robustness fine-tuning trains. Nothing is left undisposed when attaching fails.</summary>
    static Run Attach(string method, IReadOnlyDictionary<string, string>? hp, long seed, string? backbone)
    {
        var vit = ZeroShotModel(backbone);
        HeadSnapshot? head = null;
        try
        {
            head = HeadSnapshot.Capture(vit);
            return new Run(Peft.Peft.Attach(vit, method, hp, seed: seed), head);
        }
        catch { head?.Dispose(); vit.Dispose(); throw; }
    }

    /// <summary>
    /// Fine-tunes <paramref name="method"/> from the zero-shot head at each lr of <paramref name="select"/> on MNIST train800,
    /// scoring val200 every epoch (the val curve the convergence diagnostics read), and keeps the model that the protocol's
    /// selection (<see cref="Protocol.Select"/>: last-epoch val top-1, then the tie-break) picks. The lr is chosen as VTAB-1K's
    /// is, not fixed: a fixed 1e-3 left the PEFT methods behind full FT on MNIST (val200 at 10 epochs: LoRA 94.0 at 1e-3,
    /// 96.0 at 1e-2), so "PEFT keeps more of the zero-shot model" partly measured under-training. The selected model itself
    /// is the fine-tuned one (no refit on train800val200: a third fine-tuning per method, for a curve that needs a model).
    /// </summary>
    public static Tuned FineTuneSelected(string method, TrainOptions options, LrSelection select, IReadOnlyDictionary<string, string>? hp = null,
        Action<string>? log = null, IProgress<TrainProgress>? progress = null, CancellationToken cancel = default, string? backbone = null)
    {
        if (select.Lrs.Count == 0) throw new ArgumentException("Robustness: the lr grid to select from is empty; give at least one lr.", nameof(select));
        // The protocol's tune trials (Protocol.RunTrial: train800 -> val200, scored every epoch), one per lr, each from the
        // zero-shot head; the selection's model is handed over instead of disposed, with the head it started from.
        var o = new ProtocolOptions
        {
            Profile = select.Profile, Protocol = TrialProtocol, Train = options, Lrs = select.Lrs, WeightDecays = new[] { options.WeightDecay },
            DropPaths = new[] { 0.0 }, TuneEvalEvery = 1, TieBreak = select.TieBreak,
        };
        var grid = new[] { new SortedDictionary<string, string>(hp?.ToDictionary(kv => kv.Key, kv => kv.Value) ?? new Dictionary<string, string>(), StringComparer.Ordinal) };
        Protocol.ValidateGrid(method, grid); // a bad hyperparameter is named before any image loads
        using var task = Suite.Mini.Load(Task);
        HeadSnapshot? head = null; // the zero-shot head of the trial now running, until the selection keeps it
        ModelFactory zeroShot = (config, _) =>
        {
            var run = Attach(method, config.Hp, config.Seed, backbone);
            head = run.ZeroShotHead;
            return new BuiltModel(run.Model, run.Model.TrainableParameterCountExcludingHead);
        };
        var records = new List<TrialRecord>();
        Run? kept = null;
        TrialRecord? best = null;
        try
        {
            foreach (var config in Protocol.TuneConfigs(Task, method, grid, o))
            {
                cancel.ThrowIfCancellationRequested();
                log?.Invoke($"{method}: fine-tuning from the zero-shot head at lr {config.Lr.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)} (train800, val200 every epoch) ...");
                var record = Protocol.RunTrial(config, task, zeroShot, o, store: null, _ => progress, cancel, handOver: (built, r) =>
                {
                    if (!r.Ok || (best is not null && !ReferenceEquals(Protocol.Select(new[] { best, r }, select.TieBreak), r))) return false;
                    kept?.Dispose();
                    built.Model.eval();
                    (kept, best, head) = (new Run((PeftModel)built.Model, head!), r, null);
                    return true;
                });
                head?.Dispose();
                head = null;
                records.Add(record);
            }
            if (kept is null || best is null)
                throw new InvalidOperationException($"robustness fine-tuning of {method} diverged or failed at every lr tried ({string.Join(", ", select.Lrs)})" +
                    string.Concat(records.Where(r => r.Error is not null).Select(r => $"; lr {r.Config.Lr}: {r.Error}")) + ".");
            return new Tuned(kept, records, best);
        }
        catch { kept?.Dispose(); head?.Dispose(); throw; }
    }

    /// <summary>The tune trials kept in a robustness run's folder; null when there are none or they do not read (a damaged
    /// file makes the run's convergence unknown, never a failed notebook: the curve beside it stands).</summary>
    public static IReadOnlyList<TrialRecord>? ReadTuning(string dir)
    {
        var path = Path.Combine(dir, TuningFile);
        if (!File.Exists(path)) return null;
        try { return System.Text.Json.JsonSerializer.Deserialize<TrialRecord[]>(File.ReadAllText(path)) is { Length: > 0 } r && r.All(t => t?.Config is not null) ? r : null; }
        catch (Exception e) when (e is System.Text.Json.JsonException or IOException or NotSupportedException) { return null; }
    }

    /// <summary>MNIST test and the shift sets (default: sklearn digits and three corruptions at severity 3). Caller disposes.
    /// <paramref name="limit"/> keeps at most that many images of each set, evenly spaced (the smoke profile's quick look; every
    /// figure under the other profiles uses the whole sets).</summary>
    public static (ImageSet Target, Dictionary<string, ImageSet> Shifts) EvalSets(IReadOnlyList<string>? shifts = null, int? limit = null)
    {
        if (limit is <= 0) throw new ArgumentOutOfRangeException(nameof(limit), limit, "limit must be positive (or null for the whole sets).");
        ImageSet Cut(ImageSet s)
        {
            if (limit is not int n || s.Count <= n) return s;
            using (s) return s.Subset(Enumerable.Range(0, n).Select(i => i * s.Count / n).ToArray());
        }
        var target = Cut(Suite.Mini.LoadSplit(Task, "test"));
        var sets = new Dictionary<string, ImageSet>();
        try { foreach (var s in shifts ?? DefaultShifts) sets[s] = Cut(Suite.Mini.LoadShift(Task, s)); }
        catch { target.Dispose(); foreach (var s in sets.Values) s.Dispose(); throw; }
        return (target, sets);
    }

    /// <summary>Top-1 of the zero-shot model on MNIST test and each shift set: alpha 0 of every method's robustness curve.</summary>
    public static WisePoint ZeroShotPoint(ImageSet target, IReadOnlyDictionary<string, ImageSet> shifts, int batchSize = 256, string? backbone = null)
    {
        using var vit = ZeroShotModel(backbone);
        vit.eval();
        return new WisePoint(0, Wise.Top1(vit, target, batchSize), shifts.ToDictionary(kv => kv.Key, kv => Wise.Top1(vit, kv.Value, batchSize)));
    }

    /// <summary>MNIST test, the shift sets and the zero-shot point (alpha 0 of every curve), loaded on first use and kept
    /// for every method that trains: <see cref="Curves"/> makes one per call, and a caller that runs one method per call
    /// (<see cref="Findings.ShiftRobustness.Run"/>) passes one in so the sets are read and the zero-shot model scored once.</summary>
    public sealed class ShiftSets : IDisposable
    {
        public IReadOnlyList<string> Names { get; }
        public int? Limit { get; }
        /// <summary>The backbone's name (<see cref="Workbench.DefaultBackbone"/> for null).</summary>
        public string Backbone { get; }
        ImageSet? target;
        Dictionary<string, ImageSet>? sets;
        WisePoint? zeroShot;

        public ShiftSets(IReadOnlyList<string>? shifts = null, int? limit = null, string? backbone = null) =>
            (Names, Limit, Backbone) = (shifts ?? DefaultShifts, limit, backbone ?? Workbench.DefaultBackbone);

        public ImageSet Target => Load().Target;
        public Dictionary<string, ImageSet> Shifts => Load().Shifts;
        public WisePoint ZeroShot => zeroShot ??= ZeroShotPoint(Target, Shifts, backbone: Backbone);

        (ImageSet Target, Dictionary<string, ImageSet> Shifts) Load()
        {
            if (target is null) (target, sets) = EvalSets(Names, Limit);
            return (target, sets!);
        }

        /// <summary>Refuses a curve asked for other sets, another image limit or another backbone than these were loaded for.</summary>
        internal void RequireSame(IReadOnlyList<string> shifts, int? limit, string? backbone)
        {
            var asked = backbone ?? Workbench.DefaultBackbone;
            if (!shifts.SequenceEqual(Names) || limit != Limit || asked != Backbone)
                throw new ArgumentException($"Robustness: the shared shift sets were loaded for [{string.Join(", ", Names)}], limit {Limit?.ToString() ?? "none"}, " +
                    $"backbone {Backbone}; this curve asks for [{string.Join(", ", shifts)}], limit {limit?.ToString() ?? "none"}, backbone {asked}.");
        }

        public void Dispose() { target?.Dispose(); foreach (var s in sets?.Values ?? Enumerable.Empty<ImageSet>()) s.Dispose(); }
    }

    /// <summary>
    /// Fine-tunes each method from the zero-shot head and returns its WiSE curve over MNIST test and the shifts. The
    /// zero-shot point (alpha 0, the same for every method) is computed once. With a <paramref name="store"/> each
    /// curve is kept under store/robustness/&lt;method&gt;-&lt;hash of method, hyperparameters, training options, alphas,
    /// shifts&gt;/ (curve.json beside the fine-tuned adapter), and a curve found there is read, not recomputed. With
    /// <paramref name="select"/> each method's lr is selected on val200 (<see cref="FineTuneSelected"/>; options.Lr is then
    /// not used), its tune trials are kept beside the curve (tuning.json) and handed to <paramref name="tuning"/> (read back
    /// from the store too; null where a stored run has none). <paramref name="shared"/>: sets loaded by an earlier call (see <see cref="ShiftSets"/>).
    /// </summary>
    public static IReadOnlyList<WiseCurve> Curves(IEnumerable<string> methods, TrainOptions? options = null, IReadOnlyList<double>? alphas = null,
        IReadOnlyList<string>? shifts = null, Action<string>? log = null, string? store = null,
        IReadOnlyDictionary<string, string>? hp = null, IProgress<TrainProgress>? progress = null, CancellationToken cancel = default, int? limit = null,
        LrSelection? select = null, Action<MethodTuning>? tuning = null, string? backbone = null, ShiftSets? shared = null)
    {
        var opts = options ?? DefaultTraining;
        var a = alphas ?? Wise.DefaultAlphas;
        var shiftNames = shifts ?? DefaultShifts;
        shared?.RequireSame(shiftNames, limit, backbone);
        var curves = new List<WiseCurve>();
        using var owned = shared is null ? new ShiftSets(shiftNames, limit, backbone) : null;
        var eval = shared ?? owned!;
        foreach (var m in methods)
        {
            cancel.ThrowIfCancellationRequested();
            var dir = store is null ? null : Path.Combine(store, "robustness", RunName(m, hp, opts, a, shiftNames, limit, select, backbone));
            var curve = dir is null ? null : CurveFile.Read(dir);
            IReadOnlyList<TrialRecord>? trials = null;
            bool trainedNow = curve is null;
            if (curve is null)
            {
                var zeroShot = a.Contains(0) ? eval.ZeroShot : null;
                Run run;
                if (select is null)
                {
                    log?.Invoke($"{m}: fine-tuning from the zero-shot head ...");
                    run = FineTune(m, opts, hp, progress: progress, cancel: cancel, backbone: backbone);
                }
                else
                {
                    var tuned = FineTuneSelected(m, opts, select, hp, log, progress, cancel, backbone);
                    (run, trials) = (tuned.Run, tuned.Tuning);
                }
                using (run)
                {
                    log?.Invoke($"{m}: WiSE curve, {a.Count} alphas over {eval.Target.Count + eval.Shifts.Values.Sum(s => s.Count)} images ...");
                    curve = Wise.Curve(run.Model, run.ZeroShotHead, eval.Target, eval.Shifts, a, task: Task,
                        known: zeroShot is null ? null : new Dictionary<double, WisePoint> { [0] = zeroShot }, cancel: cancel);
                    if (dir is not null)
                    {
                        run.Model.SaveAdapter(dir);
                        if (trials is not null) Checkpoints.AtomicFile.WriteText(Path.Combine(dir, TuningFile), System.Text.Json.JsonSerializer.Serialize(trials));
                        CurveFile.Write(dir, curve); // last: a folder with a curve is a finished run
                    }
                }
            }
            else
            {
                log?.Invoke($"{m}: read from {dir}");
                if (select is not null) trials = ReadTuning(dir!);
            }
            tuning?.Invoke(new MethodTuning(m, trials, FromStore: !trainedNow));
            log?.Invoke($"{m}: zero-shot {curve.Points[0].Target:F1} / {curve.Points[0].MeanShift:F1}, fine-tuned {curve.Points[^1].Target:F1} / {curve.Points[^1].MeanShift:F1}");
            curves.Add(curve);
        }
        return curves;
    }

    /// <summary>The robustness runs' default training: the default profile's budget at lr 1e-3, wd 1e-4, seed 42.</summary>
    public static TrainOptions DefaultTraining => TrainOptions.ForProfile("default") with { Lr = 1e-3, WeightDecay = 1e-4 };

    /// <summary>The folder name of one robustness run in a store: method and a hash of everything its curve depends on.</summary>
    public static string RunName(string method, IReadOnlyDictionary<string, string>? hp, TrainOptions options, IReadOnlyList<double> alphas, IReadOnlyList<string> shifts, int? limit = null,
        LrSelection? select = null, string? backbone = null)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var key = string.Join("\n", Task, method, string.Join(",", (hp ?? new Dictionary<string, string>()).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}")),
            InvariantRecord(options with { Device = null }), string.Join(",", alphas.Select(x => x.ToString("R", inv))), string.Join(",", shifts), limit?.ToString(inv) ?? "all", Workbench.Version);
        // A selected lr is another run (train800 and a grid, not train800val200 at one lr); names without one stay as they were.
        if (select is not null) key += $"\nlr selected on val200 over {string.Join(",", select.Lrs.Select(x => x.ToString("R", inv)))}, {select.TieBreak}";
        // Another backbone than "mini" is another run; mini's names stay as they were before mini-hand became the default.
        var name = backbone ?? Workbench.DefaultBackbone;
        if (name != Workbench.UnsuffixedBackbone) key += $"\nbackbone {name}";
        return $"{method}-{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)))[..12]}";
    }

    /// <summary>
    /// What a record's compiler-made ToString gives under the invariant culture ("TrainOptions { Epochs = 10, Lr = 0.001, ... }":
    /// every public instance property in declaration order, null as nothing), without touching the thread's culture. A
    /// robustness run's name hashes it, so stores written before (when RunName set the culture around ToString) still read.
    /// </summary>
    static string InvariantRecord<T>(T record) where T : class
    {
        var members = typeof(T).GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0)
            .Select(p => p.GetValue(record) switch
            {
                null => $"{p.Name} = ",
                IFormattable f => $"{p.Name} = {f.ToString(null, System.Globalization.CultureInfo.InvariantCulture)}",
                var v => $"{p.Name} = {v}",
            });
        return $"{typeof(T).Name} {{ {string.Join(", ", members)} }}";
    }

    /// <summary>The zero-shot model (alpha 0 of the first curve, the same for every method) and each fine-tuned model
    /// (alpha 1): model, target, one column per shift set, mean_shift.</summary>
    public static DataFrame EndPoints(IReadOnlyList<WiseCurve> curves)
    {
        var rows = curves.Take(1).Select(c => ("zero-shot", c.Points.First(p => p.Alpha == 0)))
            .Concat(curves.Select(c => ($"{c.Method} (fine-tuned)", c.Points.First(p => p.Alpha == 1)))).ToList();
        var cols = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("model", rows.Select(r => r.Item1)),
            new PrimitiveDataFrameColumn<double>("target", rows.Select(r => r.Item2.Target)),
        };
        foreach (var s in rows.Count > 0 ? rows[0].Item2.Shifts.Keys : Enumerable.Empty<string>())
            cols.Add(new PrimitiveDataFrameColumn<double>(s, rows.Select(r => r.Item2.Shifts[s])));
        cols.Add(new PrimitiveDataFrameColumn<double>("mean_shift", rows.Select(r => Math.Round(r.Item2.MeanShift, 2))));
        return new DataFrame(cols);
    }

    /// <summary>All curves in one long table (method, alpha, target, shifts, mean_shift).</summary>
    public static DataFrame Table(IReadOnlyList<WiseCurve> curves)
    {
        var df = curves[0].ToDataFrame();
        foreach (var c in curves.Skip(1)) df = df.Append(c.ToDataFrame().Rows, inPlace: false);
        return df;
    }
}
