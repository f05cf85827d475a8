using PeftWorkbench.Findings;
using PeftWorkbench.Tests.Tuning;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Findings;

public class ManyShotTests
{
    static CapacityPoint P(string method, int? capacity, long parameters, double top1, string dataset = "fashion-mnist") => new(dataset, method, capacity, parameters, top1);

    /// <summary>A hand-made sweep: full 80, linear 70, LoRA 75 at width 1 and 79.6 at 32, the adapter 77 and 81.</summary>
    static List<CapacityPoint> Hand() => new()
    {
        P("full", null, 1_000_000, 80), P("linear", null, 0, 70), P("lora", 1, 3_000, 75), P("lora", 32, 96_000, 79.6),
        P("rand_h_adapter", 1, 2_000, 77), P("rand_h_adapter", 32, 60_000, 81),
    };

    [Fact]
    public void Paper_points_split_method_N_into_the_method_and_its_capacity()
    {
        var cifar = ManyShot.PaperPoints(ManyShot.PaperDatasets["natural"]);
        var lora8 = Assert.Single(cifar, p => p.Method == "lora" && p.Capacity == 8);
        Assert.Equal(("CIFAR-100", 294_912L, 92.43), (lora8.Dataset, lora8.TrainableParams, lora8.Top1));
        Assert.Equal(9, cifar.Count(p => p.Method == "rand_h_adapter"));    // widths 1, 2, 4, ..., 256
        var full = Assert.Single(cifar, p => p.Method == "full");
        Assert.Equal((null, 87.48), (full.Capacity, full.Top1));
        Assert.Equal(0, Assert.Single(cifar, p => p.Method == "linear").TrainableParams);
        // Clevr-distance is setting "clevr"; the 500/225 subsets are not the full sets.
        Assert.Equal(91.36, Assert.Single(ManyShot.PaperPoints(ManyShot.PaperDatasets["structured"]), p => p.Method == "full").Top1);
        Assert.Equal(97.25, Assert.Single(ManyShot.PaperPoints(ManyShot.PaperDatasets["specialized"]), p => p.Method == "full").Top1);
        Assert.Throws<ArgumentException>(() => ManyShot.PaperPoints(new PaperDataset("cifar100", "7", "x")));
    }

    [Fact]
    public void Mini_tasks_stand_against_the_study_dataset_of_their_kind()
    {
        Assert.Equal("CIFAR-100", ManyShot.PaperDatasetFor("fashion-mnist").Name);
        Assert.Equal("RESISC45", ManyShot.PaperDatasetFor("landcover").Name);
        Assert.Equal("Clevr-distance", ManyShot.PaperDatasetFor("clevr-count").Name);
        Assert.Throws<ArgumentException>(() => ManyShot.PaperDatasetFor("imagenet"));
    }

    [Fact]
    public void Summary_averages_the_swept_methods_at_their_smallest_and_largest_width()
    {
        var s = Assert.Single(ManyShot.Summarize(Hand()));
        Assert.Equal(80, s.FullTop1);
        Assert.Equal(((75 - 80) + (77 - 80)) / 2.0, s.SmallestVsFull, 9);
        Assert.Equal(((79.6 - 80) + (81 - 80)) / 2.0, s.LargestVsFull, 9);
        Assert.Equal((1, 32), (s.SmallestCapacity, s.LargestCapacity));
        Assert.Equal(1, s.BestVsFull, 9);
        Assert.Equal(-10, s.LinearVsFull, 9);
        // Without full fine-tuning there is nothing to compare with: NaN, not a number that looks like a result.
        Assert.True(double.IsNaN(ManyShot.Summarize(Hand().Where(p => p.Method != "full").ToList())[0].LargestVsFull));
    }

    static Claim Find(IReadOnlyList<Claim> claims, string part) => Assert.Single(claims, c => c.What.Contains(part, StringComparison.Ordinal));

    [Fact]
    public void Claims_judge_ours_against_the_study_s_dataset_of_the_same_kind()
    {
        var f = ManyShot.From(Hand());
        Assert.Equal(new[] { "CIFAR-100", "RESISC45", "Clevr-distance" }, f.PaperGaps.Select(s => s.Dataset));
        Assert.Equal(6, ManyShot.PaperPointsLike(Hand()).Count(p => p.Dataset == "RESISC45")); // full, linear, lora and adapter at widths 1 and 32
        Assert.Equal(3 * 2 * 9, ManyShot.PaperPointsFor(new[] { "lora", "houlsby" }).Count);  // every width the study ran
        Assert.Equal(1 + 3, f.GapsTable().Rows.Count);                                        // ours, then the paper's three
        // The paper on CIFAR-100 (full): LoRA 32 92.40, adapter 32 92.84 against full 87.48: +5.1; widths 1: 91.53, 92.15: +4.4.
        Assert.Equal(((92.40 - 87.48) + (92.84 - 87.48)) / 2, f.PaperGaps[0].LargestVsFull, 9);
        Assert.Equal(4, f.Claims.Count);                                  // one task: widest, best, widening, linear
        var widest = Find(f.Claims, "PEFT at width 32 - full FT");
        Assert.Equal("fashion-mnist vs CIFAR-100: PEFT at width 32 - full FT", widest.What);
        Assert.Equal((0.3, Verdict.Agrees), (Math.Round(widest.Ours!.Value, 1), widest.Verdict));    // competitive in both
        Assert.Equal(5.1, Math.Round(widest.Paper!.Value, 1));
        Assert.Equal((1.0, Verdict.Agrees), (Math.Round(Find(f.Claims, "best PEFT run").Ours!.Value, 1), Find(f.Claims, "best PEFT run").Verdict));
        // Widening helps ours by 4.3 points; the study's CIFAR-100 by 0.8 (under the 1-point bar): a disagreement.
        var widening = Find(f.Claims, "width 32 - at width 1");
        Assert.Equal((4.3, 0.8, Verdict.Disagrees), (Math.Round(widening.Ours!.Value, 1), Math.Round(widening.Paper!.Value, 1), widening.Verdict));
        var linear = Find(f.Claims, "linear probe");
        Assert.Equal((-10.0, -2.1, Verdict.Agrees), (Math.Round(linear.Ours!.Value, 1), Math.Round(linear.Paper!.Value, 1), linear.Verdict));
        // A budget the diagnostics do not vouch for makes the disagreement and the agreement inconclusive.
        var untrusted = ManyShot.ClaimsOf(f.OurGaps, f.PaperGaps, new BudgetReading(false, "2 of 4 finals had not settled"));
        Assert.Equal(Verdict.Inconclusive, Find(untrusted, "width 32 - at width 1").Verdict);
        Assert.Equal(Verdict.Inconclusive, Find(untrusted, "linear probe").Verdict);
        Assert.Contains("agrees on these numbers, but 2 of 4 finals had not settled", Find(untrusted, "linear probe").Note);

        // PEFT 3 points behind full FT at its widest is not competitive, where the study's is: a disagreement.
        var behind = ManyShot.From(new List<CapacityPoint> { P("full", null, 10, 80), P("linear", null, 0, 79.5), P("lora", 1, 1, 70), P("lora", 8, 8, 77) });
        Assert.Equal((-3.0, Verdict.Disagrees), (Math.Round(Find(behind.Claims, "PEFT at width 8 - full FT").Ours!.Value, 1), Find(behind.Claims, "PEFT at width 8 - full FT").Verdict));
        Assert.Equal(Verdict.Disagrees, Find(behind.Claims, "linear probe").Verdict); // level with full FT; the study's 2.1 behind
        var wider = Find(behind.Claims, "width 8 - at width 1");                        // +7 against the study's 92.43 - 91.53 = +0.9 (under the bar)
        Assert.Equal((7.0, 0.9, Verdict.Disagrees), (Math.Round(wider.Ours!.Value, 1), Math.Round(wider.Paper!.Value, 1), wider.Verdict));

        // A structured task stands against Clevr-distance; without full fine-tuning there is nothing to judge.
        Assert.Contains("clevr-count vs Clevr-distance", ManyShot.From(Hand().Select(p => p with { Dataset = "clevr-count" }).ToList()).Claims[0].What);
        Assert.Empty(ManyShot.From(Hand().Where(p => p.Method != "full").ToList()).Claims);

        var finding = f.FindingLine();
        Assert.Equal("Finding 3 (many-shot): 3 of 4 claims agree with the study, 1 disagrees, 0 are inconclusive under this budget. Mini suite: fashion-mnist: PEFT +0.3 at width 32, -4.0 at width 1, linear -10.0 points vs full FT (80.0 %); paper: CIFAR-100: PEFT +5.1 at width 32, +4.4 at width 1, linear -2.1 points vs full FT (87.5 %).", finding);
        Assert.DoesNotContain("\n", finding);
        Assert.Contains("width 32 - at width 1: disagrees", f.VerdictLine());
    }

    [Fact]
    public void Tables_put_the_gaps_to_full_fine_tuning_beside_the_papers()
    {
        var table = ManyShot.Table(Hand());
        Assert.Equal(6, table.Rows.Count);
        Assert.Equal(-0.4, (double)table["vs_full"][3]!);
        Assert.Equal(9.6, (double)table["vs_linear"][3]!);
        var beside = ManyShot.Beside(Hand());
        Assert.Equal("CIFAR-100", (string)beside["paper_dataset"][0]);
        Assert.Equal(92.4, (double)beside["paper_top1"][3]!);                        // lora 32 on CIFAR-100
        Assert.Equal(Math.Round(92.4 - 87.48, 2), (double)beside["paper_vs_full"][3]!);
        var odd = ManyShot.Beside(new List<CapacityPoint> { P("full", null, 1, 80), P("lora", 3, 1, 75) }); // the study ran no width 3
        Assert.Null(odd["paper_top1"][1]);
    }

    [Fact]
    public void The_sweep_knows_each_swept_methods_width_and_refuses_bad_widths_before_training()
    {
        Assert.Equal("lora_bottleneck", CapacitySweep.KeyOf("lora"));
        Assert.Equal("adapter_bottleneck", CapacitySweep.KeyOf("houlsby"));
        Assert.Null(CapacitySweep.KeyOf("full"));
        Assert.Throws<ArgumentException>(() => CapacitySweep.KeyOf("nope"));
        var store = Temp.Dir();
        Assert.Throws<ArgumentException>(() => CapacitySweep.Run(new[] { "fashion-mnist" }, new[] { "lora" }, new[] { 0 }, "smoke", store));
        var wide = Assert.ThrowsAny<ArgumentException>(() => CapacitySweep.Run(new[] { "fashion-mnist" }, new[] { "full", "lora" }, new[] { 4096 }, "smoke", store));
        Assert.Contains("Rank", wide.Message);
        Assert.False(File.Exists(Path.Combine(store, "trials.jsonl"))); // nothing trained
    }
    [Fact]
    public void The_chart_puts_parameters_on_a_log_axis_and_the_linear_probe_as_a_level_line()
    {
        var js = PeftWorkbench.Plots.Charts.AccuracyVsParams(Hand(), "ours").GetInlineJS();
        var data = Newtonsoft.Json.Linq.JArray.Parse(System.Text.RegularExpressions.Regex.Match(js, @"var data = (.*?);\s*var layout", System.Text.RegularExpressions.RegexOptions.Singleline).Groups[1].Value);
        var layout = Newtonsoft.Json.Linq.JObject.Parse(System.Text.RegularExpressions.Regex.Match(js, @"var layout = (.*?);\s*Plotly", System.Text.RegularExpressions.RegexOptions.Singleline).Groups[1].Value);
        Assert.Equal("log", (string)layout["xaxis"]!["type"]!);
        Assert.Equal("trainable parameters without the head (log scale)", (string)layout["xaxis"]!["title"]!);
        Assert.Equal("test top-1 (%)", (string)layout["yaxis"]!["title"]!);
        Assert.True((bool)layout["showlegend"]!);
        Assert.Equal(new[] { "fashion-mnist: full", "fashion-mnist: linear probe (0 params)", "fashion-mnist: lora", "fashion-mnist: rand_h_adapter" }, data.Select(t => (string)t["name"]!).Order());
        var linear = data.Single(t => ((string)t["name"]!).Contains("linear"));
        Assert.Equal("dash", (string)linear["line"]!["dash"]!);
        Assert.Equal(new[] { 70.0, 70.0 }, linear["y"]!.Select(v => (double)v));
        Assert.Equal(new[] { 1000.0, 2_000_000.0 }, linear["x"]!.Select(v => (double)v)); // spans the positive counts, halved and doubled
        var lora = data.Single(t => (string)t["name"]! == "fashion-mnist: lora");
        Assert.Equal(new[] { 3000.0, 96000.0 }, lora["x"]!.Select(v => (double)v));
        Assert.Equal("lines+markers", (string)lora["mode"]!);
    }
}
