using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using PeftWorkbench.Analysis;
using PeftWorkbench.Plots;
using PeftWorkbench.Tests.Data;
using XPlot.Plotly;

namespace PeftWorkbench.Tests.Analysis;

public class ChartTests
{
    /// <summary>The traces and layout a chart hands plotly.js.</summary>
    static (JArray Data, JObject Layout) Spec(PlotlyChart chart)
    {
        var js = chart.GetInlineJS();
        var m = Regex.Match(js, @"var data = (.*?);\s*var layout = (.*?);\s*Plotly", RegexOptions.Singleline);
        Assert.True(m.Success, js.Length > 2000 ? js[..2000] : js);
        return (JArray.Parse(m.Groups[1].Value), JObject.Parse(m.Groups[2].Value));
    }

    static void Labelled(JObject layout, string titlePart, string x, string y)
    {
        Assert.Contains(titlePart, (string)layout["title"]!);
        Assert.Equal(x, (string)layout["xaxis"]!["title"]!);
        Assert.Equal(y, (string)layout["yaxis"]!["title"]!);
        Assert.True((bool)layout["showlegend"]!);
    }

    static string[] Types(JArray data) => data.Select(t => (string)t["type"]!).ToArray();

    [Fact]
    public void Heatmap_is_clustered_and_labelled()
    {
        var (data, layout) = Spec(Charts.Heatmap(Agreement.Identical(Hand.Three())));
        Assert.Equal(new[] { "heatmap" }, Types(data));
        Labelled(layout, "identical predictions", "method", "method");
        Assert.Equal(3, data[0]["x"]!.Count());
    }

    [Fact]
    public void Venn_draws_three_circles_with_ours_and_the_study_counts()
    {
        var ours = new VennCounts("ours", new[] { "lora", "rand_h_adapter", "ssf" }, new Dictionary<int, int> { [1] = 11, [7] = 77 }, 100);
        var (data, layout) = Spec(Charts.Venn3(ours, ConfidentSets.StudyCifar100));
        Assert.Equal(3, layout["shapes"]!.Count(s => (string)s["type"]! == "circle"));
        var texts = layout["annotations"]!.Select(a => (string)a["text"]!).ToList();
        Assert.Contains("11<br>(1634)", texts);
        Assert.Contains("77<br>(1425)", texts);
        Assert.Equal(new[] { "lora", "rand_h_adapter", "ssf" }, data.Select(t => (string)t["name"]!));
        Assert.Contains("ours", (string)layout["title"]!);
        var (bars, barLayout) = Spec(Charts.UpSet(ours, null));
        Assert.Equal(new[] { "bar" }, Types(bars));
        Labelled(barLayout, "ours", "region (samples in exactly these sets)", "samples");
    }

    [Fact]
    public void Figure_1a_has_a_range_a_cross_and_a_square()
    {
        var (data, layout) = Spec(Charts.GainOverLinear(Paper.Vtab1kScores()));
        Assert.Equal(new[] { "scatter", "scatter", "scatter" }, Types(data));
        Assert.Equal(new[] { "PEFT methods (least to most accurate)", "linear probe", "full fine-tuning" }, data.Select(t => (string)t["name"]!));
        Assert.Equal("x", (string)data[1]["marker"]!["symbol"]!);
        Assert.Equal("square", (string)data[2]["marker"]!["symbol"]!);
        Assert.Equal(19 * 3, data[0]["x"]!.Count());
        Labelled(layout, "Figure 1a", "task (grouped: natural, specialized, structured)", "top-1 gain over linear probe (points)");
    }

    /// <summary>The bottom margin follows the longest tick label at a fixed slant: the paper's
    /// "specialized/diabetic_retinopathy" gets room below it for the axis title, the mini suite's shorter labels no
    /// blank band (a fixed 190 px gave both the same).</summary>
    [Fact]
    public void Figure_1a_sizes_its_bottom_margin_to_its_tick_labels()
    {
        static (int Margin, double Angle) Bottom(IReadOnlyList<Score> scores)
        {
            var (_, layout) = Spec(Charts.GainOverLinear(scores));
            return ((int)layout["margin"]!["b"]!, (double)layout["xaxis"]!["tickangle"]!);
        }
        var paper = Paper.Vtab1kScores();
        var mini = paper.Where(s => s.Task is "cifar" or "dtd").Select(s => s with { Task = s.Task == "cifar" ? "mnist" : "digits" }).ToList();
        var (paperMargin, paperAngle) = Bottom(paper);
        var (miniMargin, miniAngle) = Bottom(mini);
        Assert.Equal(45, paperAngle);
        Assert.Equal(45, miniAngle);
        // "specialized/diabetic_retinopathy" (32 characters) at 45 degrees, 7 px a character, and 50 px for the title.
        Assert.Equal((int)Math.Ceiling(50 + 32 * 7 * Math.Sin(Math.PI / 4)), paperMargin);
        Assert.True(miniMargin < paperMargin - 50, $"natural/digits gets {miniMargin} px, specialized/diabetic_retinopathy {paperMargin} px");
    }

    [Fact]
    public void Robustness_and_paper_bars_are_labelled()
    {
        var (data, layout) = Spec(Charts.PaperRobustness());
        Assert.All(Types(data), t => Assert.Equal("scatter", t));
        Assert.Contains("zero-shot (alpha 0)", data.Select(t => (string)t["name"]!));
        Labelled(layout, "WiSE", "target test top-1 (%)", "mean top-1 over shift sets (%)");
        var (bars, barLayout) = Spec(Charts.BesidePaper(new[] { new Score("mnist", "natural", "lora", 90) }));
        Assert.Equal(new[] { "bar", "bar" }, Types(bars));
        Assert.Equal(new[] { "ours", "paper" }, bars.Select(t => (string)t["name"]!));
        Labelled(barLayout, "ours", "method", "mean top-1 (%)");
        var ens = new[]
        {
            new EnsembleResult("t", "g", EnsembleRule.LogitMean, new[] { "a", "b" }, 80, 81, "a", 79),
            new EnsembleResult("t", "g", EnsembleRule.LogitMean, new[] { "a", "b", "c" }, 80, 82, "a", 79, "all methods"),
        };
        var (eb, el) = Spec(Charts.EnsembleGains(ens));
        Assert.Equal(new[] { "best single member", "greedy ensemble, LogitMean", "all methods, LogitMean" }, eb.Select(t => (string)t["name"]!));
        Labelled(el, "Ensembles", "task", "test top-1 (%)");
    }

    [Fact]
    public void Html_is_standalone_and_offline_when_plotly_js_is_installed()
    {
        using var dir = new TempDir();
        var path = Charts.Heatmap(Agreement.Identical(Hand.Three())).SaveHtml(dir.File("h.html"));
        var html = File.ReadAllText(path);
        Assert.Contains("Plotly.newPlot", html);
        if (PlotlyJs.Locate() is null) return; // CI without the npm package: the page falls back to the CDN (warned)
        Assert.DoesNotContain("src=\"https://", html); // plotly.js itself mentions its CDN in a default, so look for script sources
        Assert.Contains(PlotlyJs.Marker, html);
    }
}
