using PeftWorkbench.Analysis;
using PeftWorkbench.Findings;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Findings;

public class ShiftRobustnessTests
{
    static WisePoint Pt(double alpha, double target, double digits, double noise) =>
        new(alpha, target, new Dictionary<string, double> { ["gaussian_noise-3"] = noise, ["digits"] = digits });

    /// <summary>Hand-made curves (alpha 0, 0.5, 1) from one zero-shot point (80 / digits 60 / noise 50). Full FT: 98 on the
    /// target, 40 on digits, 30 on noise; WiSE at 0.5 brings back 58 / 48. LoRA: 97, 55 on digits but 25 on noise.</summary>
    static List<WiseCurve> Hand() => new()
    {
        new("full", "mnist", new[] { Pt(0, 80, 60, 50), Pt(0.5, 95, 58, 48), Pt(1, 98, 40, 30) }),
        new("lora", "mnist", new[] { Pt(0, 80, 60, 50), Pt(0.5, 92, 58, 45), Pt(1, 97, 55, 25) }),
    };

    static Claim Find(IReadOnlyList<Claim> claims, string start) => Assert.Single(claims, c => c.What.StartsWith(start, StringComparison.Ordinal));

    [Fact]
    public void Each_shift_set_is_judged_apart_the_real_shift_against_the_study_s_natural_shifts()
    {
        var f = ShiftRobustness.From(Hand());
        Assert.Equal(5, f.Claims.Count);
        // The real shift first: LoRA 55 - full 40 = +15, against the study's LoRA-32 55.9 - full 42.5 = +13.4 (mean of its 4 shifts).
        var digits = f.Claims[0];
        Assert.StartsWith("PEFT - full FT on digits (the real shift)", digits.What);
        Assert.Equal((15.0, 13.4, Verdict.Agrees), (digits.Ours!.Value, Math.Round(digits.Paper!.Value, 1), digits.Verdict));
        Assert.Contains("imagenet-a +21.9", digits.Note);                           // the study's per set: 40.29 - 18.43
        // A corruption has no study number; its rule is the study's sign, which LoRA's 25 against 30 breaks.
        var noise = Find(f.Claims, "PEFT - full FT on gaussian_noise-3 (a corruption)");
        Assert.Equal((-5.0, (double?)null, Verdict.Disagrees), (noise.Ours!.Value, noise.Paper, noise.Verdict));
        Assert.Equal((5.0, Verdict.Agrees), (Find(f.Claims, "PEFT - full FT, mean over our 2").Ours!.Value, Find(f.Claims, "PEFT - full FT, mean over our 2").Verdict));
        // WiSE: full FT's best alpha is 0.5 ((95 + 53) / 2 = 74), its mean shift 35 -> 53: +18 (the study's +16.9 at alpha 0.4).
        var wise = Find(f.Claims, "WiSE on full FT");
        Assert.Equal((18.0, 16.9, Verdict.Agrees), (wise.Ours!.Value, Math.Round(wise.Paper!.Value, 1), wise.Verdict));
        Assert.Contains("best alpha: ours 0.5, the study's 0.4", wise.Note);
        // LoRA's WiSE gain 40 -> 51.5 = +11.5, so WiSE helps full FT 6.5 points more (the study: 16.9 - 4.2 = +12.7).
        var most = Find(f.Claims, "WiSE's shift gain on full FT - on PEFT");
        Assert.Equal((6.5, 12.7, Verdict.Agrees), (most.Ours!.Value, Math.Round(most.Paper!.Value, 1), most.Verdict));

        // Reversed: full FT keeps more on digits than LoRA -> disagrees.
        var reversed = Hand().Select(c => c.Method == "full" ? c with { Points = new[] { Pt(0, 80, 60, 50), Pt(0.5, 95, 58, 48), Pt(1, 98, 59, 30) } } : c).ToList();
        Assert.Equal(Verdict.Disagrees, ShiftRobustness.From(reversed).Claims[0].Verdict);
        // Without full FT there is nothing to judge.
        Assert.Empty(ShiftRobustness.From(Hand().Where(c => c.Method != "full").ToList()).Claims);
    }

    /// <summary>A robustness tune trial of <paramref name="method"/> at <paramref name="lr"/> with this val200 curve.</summary>
    static TrialRecord Tune(string method, double lr, params double[] val)
    {
        var config = new TrialConfig { Task = "mnist", Method = method, Lr = lr, WeightDecay = 1e-4, Protocol = Robustness.TrialProtocol, Profile = "default" };
        return new TrialRecord
        {
            Key = config.Key, Config = config, Top1Last = val[^1], Epochs = val.Length, TrainableParams = method == "full" ? 1000 : 10,
            EvalCurve = val.Select(v => (double?)v).ToArray(), LossCurve = val.Select(v => (100 - v) / 50).ToArray(),
        };
    }

    static IReadOnlyDictionary<string, IReadOnlyList<TrialRecord>?> Trials(params (string Method, TrialRecord[] Trials)[] runs) =>
        runs.ToDictionary(r => r.Method, r => (IReadOnlyList<TrialRecord>?)r.Trials);

    /// <summary>Issue 27: the robustness runs read as any protocol run: the selected lr's val200 curve over its last quarter
    /// (not the training loss, which keeps falling after val has settled), the grid edge, and test beside val.</summary>
    [Fact]
    public void Fine_tunings_whose_selected_val_curve_still_rises_make_a_disagreement_inconclusive()
    {
        var rising = ShiftRobustness.Diagnose(Hand(), Trials(
            ("full", new[] { Tune("full", 1e-3, 80, 85, 90, 94), Tune("full", 1e-2, 20, 30, 40, 50) }),
            ("lora", new[] { Tune("lora", 1e-3, 60, 70, 75, 80), Tune("lora", 1e-2, 80, 88, 92, 95) })));
        Assert.False(rising.Reading().Trusted);
        Assert.StartsWith("2 of 2 runs were still improving when training stopped (val top-1 of the selected configuration trained for its whole schedule", rising.Sentence());
        Assert.Equal(new double?[] { 1e-3, 1e-2 }, rising.Runs.Select(r => r.SelectedLr));
        Assert.Equal(new[] { "lr lowest", "lr highest" }, rising.Runs.Select(r => r.Edge));
        Assert.Equal(new double?[] { 98 - 94, 97 - 95 }, rising.Runs.Select(r => r.TestMinusVal)); // test: the curve's fine-tuned target (alpha 1)
        var f = ShiftRobustness.From(Hand(), rising);
        var noise = Find(f.Claims, "PEFT - full FT on gaussian_noise-3");
        Assert.Equal(Verdict.Inconclusive, noise.Verdict);
        Assert.Contains("2 of 2 runs had not settled", noise.Note);
        Assert.Contains("agrees on these numbers, but 2 of 2 runs had not settled", f.Claims[0].Note);

        // Settled val curves (their training loss may still fall): the numbers are read as they are.
        var settled = ShiftRobustness.Diagnose(Hand(), Trials(
            ("full", new[] { Tune("full", 1e-3, 80, 93, 94, 94), Tune("full", 1e-2, 20, 30, 30, 30) }),
            ("lora", new[] { Tune("lora", 1e-3, 60, 80, 81, 81), Tune("lora", 1e-2, 80, 95, 95, 95.5) })));
        Assert.True(settled.Reading().Trusted);
        Assert.Equal(Verdict.Disagrees, Find(ShiftRobustness.From(Hand(), settled).Claims, "PEFT - full FT on gaussian_noise-3").Verdict);
        // No tune trials on record (a store from before the lr was selected, or a damaged tuning.json): unknown, not trusted.
        var unknown = ShiftRobustness.Diagnose(Hand(), Trials(("full", null!)));
        Assert.False(unknown.Reading().Trusted);
        Assert.Equal(new double?[] { 98, 97 }, unknown.Runs.Select(r => r.Test));
    }

    [Fact]
    public void The_per_shift_table_puts_ours_beside_the_study_s_four_sets()
    {
        var f = ShiftRobustness.From(Hand());
        var t = f.PerShiftTable();
        Assert.Equal(2 + 4, t.Rows.Count);
        Assert.Equal(("ours", "digits", "real shift"), ((string)t["source"][0], (string)t["shift set"][0], (string)t["kind"][0]));
        Assert.Equal((60.0, 40.0, 55.0, 15.0), ((double)t["zero-shot"][0]!, (double)t["full FT"][0]!, (double)t["PEFT (mean)"][0]!, (double)t["PEFT - full FT"][0]!));
        Assert.Equal("corruption", (string)t["kind"][1]);
        Assert.Equal(("paper", "imagenet-a", 21.9), ((string)t["source"][4], (string)t["shift set"][4], (double)t["PEFT - full FT"][4]!));
        Assert.StartsWith("Finding 4 (robustness and WiSE): 4 of 5 claims agree with the study, 1 disagrees, 0 are inconclusive under this budget (2 methods). Zero-shot 80.0 / 55.0", f.FindingLine());
        Assert.Contains("gaussian_noise-3 (a corruption), fine-tuned: disagrees", f.VerdictLine());
    }
    /// <summary>A store holding the smoke profile's curves for <paramref name="methods"/> (so Run reads them, trains nothing).</summary>
    static void Stored(string store, params string[] methods)
    {
        var p = PeftWorkbench.Tuning.Profiles.Get("smoke");
        foreach (var m in methods)
        {
            var dir = Path.Combine(store, "robustness", Robustness.RunName(m, null, p.Robustness, p.RobustnessAlphas ?? Wise.DefaultAlphas,
                Robustness.DefaultShifts, p.RobustnessImagesPerSet, p.RobustnessSelection));
            Directory.CreateDirectory(dir);
            CurveFile.Write(dir, Hand().First(c => c.Method == m));
        }
    }

    /// <summary>Issue 23: the robustness run goes through StoppableProgress.Each, Study.RunAll's loop. Counted, its lines
    /// start "[k/n] "; an Interrupt between two methods ends the line once, after the line it stopped at.</summary>
    [Fact]
    public void A_counted_robustness_run_numbers_its_lines_and_says_stopped_once()
    {
        using var tmp = new TempDir();
        Stored(tmp.Path, "full", "lora");
        var lines = new List<string>();
        var f = ShiftRobustness.Run("smoke", new[] { "full", "lora" }, store: tmp.Path, log: lines.Add, counted: true);
        Assert.Equal(2, f.Curves.Count);
        Assert.Equal("[1/2] full", lines[0]);
        Assert.Contains(lines, l => l.StartsWith("[1/2] full: read from ", StringComparison.Ordinal));
        Assert.Contains("[2/2] lora", lines);
        Assert.All(lines, l => Assert.Matches(@"^\[[12]/2\] (full|lora)", l));

        lines.Clear();
        using var interrupt = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => ShiftRobustness.Run("smoke", new[] { "full", "lora" }, store: tmp.Path,
            log: l => { lines.Add(l); if (l.StartsWith("[1/2] full: zero-shot", StringComparison.Ordinal)) interrupt.Cancel(); }, counted: true, cancel: interrupt.Token));
        Assert.Equal("[1/2] full: zero-shot 80.0 / 55.0, fine-tuned 98.0 / 35.0 -- stopped (interrupted): " + PeftWorkbench.Display.StoppableProgress.Kept, lines[^1]);
        Assert.Single(lines, l => l.Contains("stopped", StringComparison.Ordinal));
    }

    /// <summary>Notebook 05's run (not counted) shows the robustness run's own lines, as before; nested in another line
    /// (<see cref="PeftWorkbench.Display.StoppableProgress.Nested"/>), an Interrupt is said once in all.</summary>
    [Fact]
    public void An_uncounted_run_shows_its_own_lines_and_a_nested_one_stops_once()
    {
        using var tmp = new TempDir();
        Stored(tmp.Path, "full", "lora");
        var lines = new List<string>();
        ShiftRobustness.Run("smoke", new[] { "full", "lora" }, store: tmp.Path, log: lines.Add);
        Assert.Equal(new[] { "full: read from ", "full: zero-shot 80.0 / 55.0, fine-tuned 98.0 / 35.0", "lora: read from ", "lora: zero-shot 80.0 / 55.0, fine-tuned 97.0 / 40.0" },
            lines.Select(l => l.Contains("read from", StringComparison.Ordinal) ? l[..(l.IndexOf("from", StringComparison.Ordinal) + 5)] : l));

        lines.Clear();
        using var interrupt = new CancellationTokenSource();
        using var outer = new PeftWorkbench.Display.StoppableProgress(l => { lines.Add(l); if (l.EndsWith("full: zero-shot 80.0 / 55.0, fine-tuned 98.0 / 35.0", StringComparison.Ordinal)) interrupt.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => outer.Run(
            () => ShiftRobustness.Run("smoke", new[] { "full", "lora" }, store: tmp.Path, log: outer.Nested("(1/2) "), cancel: interrupt.Token), interrupt.Token));
        Assert.Equal("(1/2) full: zero-shot 80.0 / 55.0, fine-tuned 98.0 / 35.0 -- stopped (interrupted): " + PeftWorkbench.Display.StoppableProgress.Kept, lines[^1]);
        Assert.Single(lines, l => l.Contains("stopped", StringComparison.Ordinal));
    }

    /// <summary>Issue 27: a robustness run selects its lr on val200 and keeps the tune trials beside its curve; a second run
    /// reads curve and trials back (trains nothing) and diagnoses them alike; a damaged tuning.json reads as unknown.</summary>
    [Fact]
    public void A_robustness_run_keeps_its_tune_trials_and_reads_them_back()
    {
        using var tmp = new TempDir();
        var first = ShiftRobustness.Run("smoke", new[] { "bitfit" }, store: tmp.Path);
        Assert.Equal((1, 0), (first.Tally!.Value.TrainedNow, first.Tally.Value.ReadBack));
        var run = Assert.Single(first.Diagnostics!.Runs);
        Assert.Equal((1e-2, 1), (run.SelectedLr!.Value, run.TuneTrials)); // smoke's grid: one lr (one epoch: too short for a trend)
        Assert.Equal(Math.Round(first.Curves[0].Points[^1].Target, 6), Math.Round(run.Test!.Value, 6));

        var again = ShiftRobustness.Run("smoke", new[] { "bitfit" }, store: tmp.Path);
        Assert.Equal((0, 1), (again.Tally!.Value.TrainedNow, again.Tally.Value.ReadBack));
        Assert.Equal(run, Assert.Single(again.Diagnostics!.Runs));

        var file = Assert.Single(Directory.GetFiles(Path.Combine(tmp.Path, "robustness"), Robustness.TuningFile, SearchOption.AllDirectories));
        File.WriteAllText(file, "[{\"Key\":");
        var damaged = ShiftRobustness.Run("smoke", new[] { "bitfit" }, store: tmp.Path);
        Assert.Equal((Trend.Unknown, (double?)null), (damaged.Diagnostics!.Runs[0].Tune, damaged.Diagnostics.Runs[0].SelectedLr));
        Assert.Equal(first.Curves[0].Points.Select(p => p.Target), damaged.Curves[0].Points.Select(p => p.Target));
    }

    /// <summary>Issue 23: ShiftRobustness runs one method per Curves call and shares one ShiftSets, so MNIST test and the
    /// shift sets are read and the zero-shot model scored once, not per method; the curves equal those of one call over
    /// both methods (which shares its own). Sets loaded for another limit or backbone are refused, naming both.</summary>
    [Fact]
    public void Shared_shift_sets_give_the_curves_of_one_call_and_refuse_other_sets()
    {
        var opts = Profiles.Get("smoke").Robustness with { Epochs = 1 };
        var alphas = new[] { 0.0, 1.0 };
        var together = Robustness.Curves(new[] { "bitfit", "ln" }, opts, alphas, limit: 50);
        using var sets = new Robustness.ShiftSets(null, 50);
        var apart = new[] { "bitfit", "ln" }.Select(m => Robustness.Curves(new[] { m }, opts, alphas, limit: 50, shared: sets)[0]).ToList();
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(together[i].Points.Select(p => (p.Target, p.MeanShift)), apart[i].Points.Select(p => (p.Target, p.MeanShift)));
            Assert.Equal(sets.ZeroShot.Target, apart[i].Points[0].Target);
        }
        var e = Assert.Throws<ArgumentException>(() => Robustness.Curves(new[] { "ln" }, opts, alphas, limit: 40, shared: sets, backbone: "mini"));
        Assert.Contains("limit 50, backbone mini-hand; this curve asks for", e.Message); // null: the default backbone
        Assert.Contains("limit 40, backbone mini.", e.Message);
    }
}
