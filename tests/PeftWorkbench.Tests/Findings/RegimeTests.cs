using PeftWorkbench.Findings;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tests.Findings;

/// <summary>Notebook 07's finding: the plan from the profile table, the heat-map maths and sign-flip sentences on a
/// hand-made table, claims against the paper data, and a three-backbone run (random init, the shipped mini ViT and a
/// checkpoint file the test writes) on toy tasks.</summary>
public class RegimeTests
{
    [Fact]
    public void ThePlanComesFromTheProfileAndEveryShippedBackbone()
    {
        var shipped = VisionTransformer.PretrainedNames;
        var smoke = RegimePlan.For("smoke");
        Assert.Equal(new[] { 50, 800 }, smoke.Sizes);
        Assert.Equal(new[] { "linear", "full", "lora" }, smoke.Methods);
        Assert.Equal(new[] { "mnist" }, smoke.Tasks);
        Assert.Equal(shipped.Select(n => n).Prepend(RegimeBackbone.RandomInit), smoke.Backbones.Select(b => b.Name));
        Assert.Equal(shipped.Select(n => "shipped:" + n).Prepend("none"), smoke.Backbones.Select(b => b.Checkpoint));
        Assert.Contains("mini", smoke.Backbones.Select(b => b.Name));
        Assert.Equal(2 * smoke.Backbones.Count * 3 * 1, smoke.RunCount);

        var def = RegimePlan.For("default");
        Assert.Equal(new[] { 50, 100, 200, 400, 800 }, def.Sizes);
        Assert.Equal(5 * def.Backbones.Count * 4, def.RunCount);
        var full = RegimePlan.For("mini-full");
        Assert.Equal(new[] { "mnist", "landcover", "dsprites-loc" }.Length, full.Tasks.Count);
        Assert.Equal(PeftWorkbench.Data.Suite.Groups.Count, full.Tasks.Select(PeftWorkbench.Analysis.Ranks.GroupOf).Distinct().Count());

        // Given checkpoints replace the shipped backbones (a file is named after itself); two with one name are refused.
        var given = RegimePlan.For("smoke", new[] { "none", "shipped:mini", "/tmp/x/strong.safetensors" });
        Assert.Equal(new[] { "random init", "mini", "strong" }, given.Backbones.Select(b => b.Name));
        Assert.Throws<ArgumentException>(() => RegimePlan.For("smoke", new[] { "/a/m.safetensors", "/b/m.safetensors" }));
        // The suite's default backbone keeps the notebooks' store (its 800-image runs are notebook 02's); others get their own.
        Assert.Equal("/s/default", RegimePlan.StoreFor("/s/default", RegimeBackbone.Of("shipped:mini"), "mini"));
        Assert.Equal("/s/default-random-init", RegimePlan.StoreFor("/s/default", RegimeBackbone.Of("none"), "mini"));
        Assert.Equal("/s/default-strong", RegimePlan.StoreFor("/s/default", RegimeBackbone.Of("/tmp/strong.safetensors"), "mini"));
    }

    static RegimePoint P(string backbone, int size, string task, string method, double top1) => new(backbone, size, task, method, top1);

    /// <summary>Two tasks; mini: PEFT ahead at 50 (+4) and 200 (+1), behind at 800 (-2); random init: behind everywhere.</summary>
    static List<RegimePoint> Hand()
    {
        var points = new List<RegimePoint>();
        void Cell(string b, int n, double full, double lora, double bitfit, double linear)
        {
            // task a = the cell's numbers + 1, task b = - 1: the means are the numbers given.
            foreach (var (task, d) in new[] { ("a", 1.0), ("b", -1.0) })
                points.AddRange(new[] { P(b, n, task, "full", full + d), P(b, n, task, "lora", lora + d), P(b, n, task, "bitfit", bitfit + d), P(b, n, task, "linear", linear + d) });
        }
        Cell("random init", 50, 40, 30, 25, 20);
        Cell("random init", 200, 60, 50, 45, 30);
        Cell("random init", 800, 80, 70, 60, 40);
        Cell("mini", 50, 60, 62, 64, 63);
        Cell("mini", 200, 70, 71, 69, 66);
        Cell("mini", 800, 85, 83, 80, 70);
        return points;
    }

    [Fact]
    public void TheHeatMapIsBestPeftMinusFullPerBackboneAndSize()
    {
        var f = Regime.From(Hand());
        RegimeGap G(string b, int n) => Assert.Single(f.Gaps, g => g.Backbone == b && g.Size == n);
        Assert.Equal(("bitfit", 4.0), (G("mini", 50).BestPeft, G("mini", 50).Gap));   // the linear probe (63) is not PEFT
        Assert.Equal(("lora", 1.0), (G("mini", 200).BestPeft, G("mini", 200).Gap));
        Assert.Equal(-2.0, G("mini", 800).Gap, 9);
        Assert.Equal(-10.0, G("random init", 50).Gap, 9);
        Assert.Equal(new[] { 50, 200 }, Regime.SizesWherePeftWins(f.Gaps, "mini"));
        Assert.Empty(Regime.SizesWherePeftWins(f.Gaps, "random init"));

        var table = f.GapTable();
        Assert.Equal(new[] { "backbone", "50 images", "200 images", "800 images" }, table.Columns.Select(c => c.Name));
        Assert.Equal(new object[] { "random init", -10.0, -10.0, -10.0 }, table.Rows[0].ToArray());
        Assert.Equal(new object[] { "mini", 4.0, 1.0, -2.0 }, table.Rows[1].ToArray());
        Assert.Contains("| mini | +4.0 | +1.0 | -2.0 |", f.GapMarkdown());
        // A sentence and a table cell round alike (Verdicts.Round: 0.25 -> 0.2, where "0.0" formatting gives 0.3).
        var half = Regime.From(new List<RegimePoint> { P("m", 50, "a", "full", 60), P("m", 50, "a", "lora", 60.25) });
        Assert.Equal(0.2, (double)half.GapTable().Rows[0][1]);
        Assert.Contains("| m | +0.2 |", half.GapMarkdown());
        Assert.Equal(new object[] { "mini", 50, 60.0, 62.0, 64.0, 63.0, "bitfit", 4.0 },
            f.Table().Rows.Single(r => (string)r[0] == "mini" && (int)r[1] == 50).ToArray());

        var sentences = Regime.FlipSentences(f.Gaps);
        Assert.Equal("random init: best PEFT beats full fine-tuning nowhere in 50-800 training images (at best -10.0 points).", sentences[0]);
        Assert.StartsWith("mini: the largest size at which best PEFT beats full fine-tuning is 200 images (lora +1.0 points); above it full fine-tuning is level or ahead (800: -2.0)", sentences[1]);
        var json = f.HeatMap().GetInlineHtml();
        Assert.Contains("\"heatmap\"", json);
        Assert.Contains("RdBu", json);
        Assert.Contains("\"reversescale\":true", json);   // blue = PEFT ahead
        Assert.Contains("\"x\":[\"n=50\",\"n=200\",\"n=800\"]", json); // one equal column per size (not a numeric axis)
        Assert.Contains("-2.0<br>lora", json.Replace("\\u003c", "<").Replace("\\u003e", ">"));
    }

    [Fact]
    public void FlipSentencesNameASizeWherePeftWinsEverywhereAndANonMonotoneRun()
    {
        var gaps = new[]
        {
            new RegimeGap("a", 50, "lora", 70, 60), new RegimeGap("a", 800, "lora", 90, 85),
            new RegimeGap("b", 50, "lora", 50, 55), new RegimeGap("b", 100, "lora", 60, 58), new RegimeGap("b", 800, "lora", 80, 81),
        };
        var s = Regime.FlipSentences(gaps);
        Assert.Equal("a: the largest size at which best PEFT beats full fine-tuning is 800 images (lora +5.0 points); PEFT is ahead at every size run (50-800).", s[0]);
        Assert.Contains("is 100 images", s[1]);
        Assert.Contains("it does not win at 50", s[1]);
    }

    [Fact]
    public void ClaimsReadTheStudysPointsFromThePaperData()
    {
        var (method, vtab) = Regime.StudyVtab1kGap();
        Assert.Equal(15.7, Math.Round(vtab, 1));      // the study's VTAB-1K: PEFT ahead of full FT by 15.7
        Assert.NotEqual("full", method);
        var many = Regime.StudyManyShotGaps();
        Assert.Contains(many, g => g.Dataset == "cifar100" && g.Setting == "full");
        Assert.Contains(many, g => g.Dataset == "resisc" && g.Setting == "225");
        Assert.DoesNotContain(many, g => g.Experiment.StartsWith("clip", StringComparison.Ordinal)); // another backbone
        Assert.True(Regime.StudyFullSetGap() < vtab);  // the study's lead shrinks with full training sets

        var f = Regime.From(Hand());
        Assert.Equal(3, f.Claims.Count); // mini: at the smallest size; the lead shrinking; beside random init
        var small = f.Claims[0];
        Assert.Equal((4.0, Verdict.Agrees), (small.Ours!.Value, small.Verdict));
        Assert.Equal(vtab, small.Paper!.Value, 9);
        var shrink = f.Claims[1];
        Assert.Equal((6.0, Verdict.Agrees), (shrink.Ours!.Value, shrink.Verdict));
        var pretraining = f.Claims[2];
        Assert.Equal(1.0 - (-10.0), pretraining.Ours!.Value, 9);
        Assert.Null(pretraining.Paper);
        Assert.Equal(Verdict.Agrees, pretraining.Verdict);

        // A pre-trained backbone where full FT wins at the smallest size disagrees, unless the budget is not vouched for.
        var behind = Hand().Select(p => p.Backbone == "mini" && p.Size == 50 && p.Method == "full" ? p with { Top1 = p.Top1 + 10 } : p).ToList();
        Assert.Equal(Verdict.Disagrees, Regime.From(behind).Claims[0].Verdict);
        Assert.Equal(Verdict.Inconclusive, Regime.ClaimsOf(Regime.GapsOf(behind), new BudgetReading(false, "1 of 2 finals had not settled"))[0].Verdict);
        Assert.Empty(Regime.From(new List<RegimePoint>()).Claims);
    }

    [Fact]
    public void ThreeBackbonesRunThroughTheStoreAndReadBack()
    {
        using var dir = new TempDir();
        var ckpt = Path.Combine(dir.Path, "stronger.safetensors");
        using (var vit = new VisionTransformer(VitConfig.Preset("mini"), seed: 7)) VitWeights.Save(vit, ckpt);
        var plan = new RegimePlan(new[] { 6, 12 }, new[] { "none", "shipped:mini", ckpt }.Select(RegimeBackbone.Of).ToList(), new[] { "linear", "full" }, new[] { "toy-3" });
        Assert.Equal(12, plan.RunCount);
        var store = Path.Combine(dir.Path, "runs");
        var lines = new List<string>();
        var f = Regime.Run(plan, "smoke", store, workers: 1, suite: "toy", progress: lines.Add);
        Assert.Equal(12, f.Points.Count);
        Assert.Equal(new[] { "random init", "mini", "stronger" }, f.Backbones);
        Assert.Equal(new[] { 6, 12 }, f.Sizes);
        Assert.Equal(3, f.GapTable().Rows.Count);
        Assert.Equal(12, f.Diagnostics!.Runs.Count);
        Assert.Contains(f.Diagnostics.Runs, r => r.Task == "toy-3 stronger n=12");
        Assert.Equal($"all {f.Tally!.Value.TrainedNow} trials trained now", f.Tally.ToString());
        Assert.Contains(lines, l => l.StartsWith("(1/6) random init, 6 images: ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("(6/6) stronger, 12 images: ", StringComparison.Ordinal));
        // toy's default backbone is random init: it uses the store itself, the others their own.
        Assert.True(File.Exists(Path.Combine(store, "trials.jsonl")));
        Assert.True(File.Exists(Path.Combine(store + "-mini", "trials.jsonl")));
        Assert.True(File.Exists(Path.Combine(store + "-stronger", "trials.jsonl")));

        var again = Regime.Run(plan, "smoke", store, workers: 1, suite: "toy");
        Assert.Equal($"all {f.Tally.Value.TrainedNow} trials read from the store", again.Tally.ToString());
        Assert.Equal(f.Points, again.Points);
    }

    [Fact]
    public void AnInterruptedRunSaysSoOnItsLine()
    {
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        var lines = new List<string>();
        var plan = new RegimePlan(new[] { 6 }, new[] { RegimeBackbone.Of("none") }, new[] { "linear" }, new[] { "toy-3" });
        Assert.ThrowsAny<OperationCanceledException>(() => Regime.Run(plan, "smoke", workers: 1, suite: "toy", progress: lines.Add, cancel: cancel.Token));
        Assert.Equal("stopped (interrupted): " + Display.StoppableProgress.Kept, Assert.Single(lines)); // nothing started: the stop alone, once
    }

    /// <summary>Issue 23: an Interrupt inside a backbone's Study.RunAll is said once, by RunAll's line, on the regime's line
    /// (with the backbone and size in front); the regime's own Each over backbones and sizes adds nothing.</summary>
    [Fact]
    public void AnInterruptInsideABackbonesRunIsSaidOnceOnTheRegimesLine()
    {
        using var dir = new TempDir();
        using var cancel = new CancellationTokenSource();
        var lines = new List<string>();
        var plan = new RegimePlan(new[] { 6 }, new[] { RegimeBackbone.Of("none") }, new[] { "linear" }, new[] { "toy-3" });
        Assert.ThrowsAny<OperationCanceledException>(() => Regime.Run(plan, "smoke", store: dir.Path, workers: 1, suite: "toy",
            progress: l => { lines.Add(l); if (l.Contains("[1/1] toy-3 linear", StringComparison.Ordinal)) cancel.Cancel(); }, cancel: cancel.Token));
        Assert.Equal("(1/1) random init, 6 images: [1/1] toy-3 linear -- stopped (interrupted): " + Display.StoppableProgress.Kept, lines[^1]);
        Assert.Equal(1, lines.Count(l => l.Contains("stopped", StringComparison.Ordinal)));
    }

    /// <summary>Issue 23: Regime.Run's interrupt is said by StoppableProgress.Each (Study.RunAll's loop) over the backbone
    /// and size steps, not by a catch of its own: its body holds no catch or filter (the using's finally only).</summary>
    [Fact]
    public void RunSaysItsInterruptThroughEachNotACatchOfItsOwn()
    {
        var body = typeof(Regime).GetMethod(nameof(Regime.Run))!.GetMethodBody()!;
        Assert.DoesNotContain(body.ExceptionHandlingClauses, c => c.Flags is System.Reflection.ExceptionHandlingClauseOptions.Clause or System.Reflection.ExceptionHandlingClauseOptions.Filter);
    }
}
