using PeftWorkbench.Analysis;
using PeftWorkbench.Tests.Tuning;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Analysis;

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

    [Fact]
    public void Claims_judge_ours_and_the_papers_from_the_numbers()
    {
        var ours = ManyShot.Summarize(Hand());
        var paper = ManyShot.Summarize(ManyShot.PaperPointsLike(Hand()));
        Assert.Equal(new[] { "CIFAR-100", "RESISC45", "Clevr-distance" }, paper.Select(s => s.Dataset));
        Assert.Equal(6, ManyShot.PaperPointsLike(Hand()).Count(p => p.Dataset == "RESISC45")); // full, linear, lora and adapter at widths 1 and 32
        Assert.Equal(3 * 2 * 9, ManyShot.PaperPointsFor(new[] { "lora", "houlsby" }).Count);  // every width the study ran
        Assert.Equal(1 + 3, ManyShot.SummaryTable(ManyShot.Summarize(Hand()), paper).Rows.Count); // ours, then the paper's three
        var claims = ManyShot.Claims(ours, paper);
        Assert.Contains(claims, c => c.Contains("largest capacity is +0.3 points") && c.Contains("ours is competitive with full FT"));
        // The paper on CIFAR-100 (full): LoRA 32 92.40, adapter 32 92.84 against full 87.48: +5.1; widths 1: 91.53, 92.15: +4.4.
        Assert.Equal(((92.40 - 87.48) + (92.84 - 87.48)) / 2, paper[0].LargestVsFull, 9);
        Assert.Contains(claims, c => c.Contains("(paper +5.1)") && c.Contains("the paper's competitive with it"));
        Assert.Contains(claims, c => c.Contains("moves PEFT by +4.3 points") && c.Contains("(paper, same widths: +0.8)"));
        Assert.Contains(claims, c => c.Contains("linear probe is -10.0 points from full FT (paper -2.1)"));
        // A PEFT method 3 points behind full FT is judged behind.
        var behind = ManyShot.Summarize(new List<CapacityPoint> { P("full", null, 10, 80), P("lora", 1, 1, 70), P("lora", 8, 8, 77) });
        Assert.Contains(ManyShot.Claims(behind, paper), c => c.Contains("ours is behind full FT"));
        var finding = ManyShot.Finding(ours, paper);
        Assert.StartsWith("Finding 3 (many-shot): mini suite: fashion-mnist: PEFT +0.3 at width 32, -4.0 at width 1, linear -10.0 points vs full FT (80.0 %); paper: CIFAR-100: PEFT +5.1", finding);
        Assert.DoesNotContain("\n", finding);
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
