using System.Globalization;
using Microsoft.Data.Analysis;
using XPlot.Plotly;

namespace PeftWorkbench.Findings;

// Regime (Regime.cs): its tables, charts and lines (what notebook 07 shows).
public sealed partial class Regime
{
    // ---------------------------------------------------------------- tables, charts, lines

    /// <summary>backbone, size, then one column per method (mean test top-1 over the tasks), then best PEFT - full FT.</summary>
    public DataFrame Table()
    {
        var methods = Points.Select(p => p.Method).Distinct().ToList();
        var rows = Gaps.OrderBy(g => Backbones.ToList().IndexOf(g.Backbone)).ThenBy(g => g.Size).ToList();
        double? Of(RegimeGap g, string m) => Points.Where(p => p.Backbone == g.Backbone && p.Size == g.Size && p.Method == m)
            .Select(p => (double?)p.Top1).DefaultIfEmpty(null).Average();
        var cols = new List<DataFrameColumn>
        {
            new StringDataFrameColumn("backbone", rows.Select(g => g.Backbone)), new PrimitiveDataFrameColumn<int>("training images", rows.Select(g => g.Size)),
        };
        cols.AddRange(methods.Select(m => new PrimitiveDataFrameColumn<double>(m, rows.Select(g => Verdicts.Round(Of(g, m))))));
        cols.Add(new StringDataFrameColumn("best PEFT", rows.Select(g => g.BestPeft)));
        cols.Add(new PrimitiveDataFrameColumn<double>("best PEFT - full FT", rows.Select(g => Verdicts.Round(g.Gap))));
        return new DataFrame(cols);
    }

    /// <summary>The heat map's numbers: one row per backbone, one column per size, best PEFT - full FT in points.</summary>
    public DataFrame GapTable()
    {
        var cols = new List<DataFrameColumn> { new StringDataFrameColumn("backbone", Backbones) };
        cols.AddRange(Sizes.Select(s => new PrimitiveDataFrameColumn<double>($"{s} images",
            Backbones.Select(b => Verdicts.Round(Gaps.FirstOrDefault(g => g.Backbone == b && g.Size == s)?.Gap)))));
        return new DataFrame(cols);
    }

    /// <summary><see cref="GapTable"/> as Markdown (the issue's note reads it).</summary>
    public string GapMarkdown()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append("| backbone | ").Append(string.Join(" | ", Sizes.Select(s => $"{s}"))).AppendLine(" |");
        sb.Append("|---|").Append(string.Concat(Sizes.Select(_ => "---|"))).AppendLine();
        foreach (var b in Backbones)
            sb.Append("| ").Append(b).Append(" | ").Append(string.Join(" | ", Sizes.Select(s => Gaps.FirstOrDefault(g => g.Backbone == b && g.Size == s) is { } g && !double.IsNaN(g.Gap)
                ? F(g.Gap, true) : "n/a"))).AppendLine(" |");
        return sb.ToString();
    }

    /// <summary>Best PEFT - full FT over (backbone x training images): a diverging scale centred on 0 (blue: PEFT ahead,
    /// red: full FT ahead), each cell labelled with its gap and best PEFT method.</summary>
    public PlotlyChart HeatMap() => Plots.Charts.RegimeHeatmap(Backbones, Sizes,
        (b, s) => Gaps.FirstOrDefault(g => g.Backbone == b && g.Size == s) is { } g && !double.IsNaN(g.Gap) ? (g.Gap, F(g.Gap, true) + "<br>" + g.BestPeft) : null);

    /// <summary>Test top-1 against training images (log axis), one colour per backbone, one line per method.</summary>
    public PlotlyChart AccuracyChart() => Plots.Charts.AccuracyVsSize(
        Points.GroupBy(p => (p.Backbone, p.Method, p.Size)).Select(g => (g.Key.Backbone, g.Key.Method, g.Key.Size, g.Average(p => p.Top1))).ToList());

    public DataFrame ClaimsTable() => Verdicts.Table(Claims);

    public string VerdictLine() => Verdicts.VerdictLine(Claims);

    /// <summary>The flip sentences, the related work's claim and the study's points, in words.</summary>
    public string Sentences()
    {
        var (m, v) = StudyVtab1kGap();
        return string.Join("\n", FlipSentences(Gaps).Select(s => "- " + s)
            .Append($"- The related work: {RelatedWorkClaim}")
            .Append($"- The study: on VTAB-1K (800 + 200 images per task) its best PEFT method ({m}) is {F(v, true)} points from full fine-tuning; " +
                $"with full training sets (CIFAR-100, RESISC45, Clevr-distance) its best PEFT run is {F(StudyFullSetGap(), true)} on average."));
    }

    /// <summary>The verdicts in words, one line per claim, then the tally.</summary>
    public string Summary() => Verdicts.InWords(Claims) + "\n" + Verdicts.Tally(Claims) + ".";

    /// <summary>The index page's line.</summary>
    public string FindingLine() =>
        $"Regime (when PEFT beats full FT): {Verdicts.Tally(Claims)} ({Backbones.Count} backbones, sizes {string.Join("/", Sizes)}). " +
        string.Join(" ", FlipSentences(Gaps));

    /// <summary>One decimal, rounded as the tables round (<see cref="Verdicts.Round"/>), so a sentence and a table cell agree.</summary>
    internal static string F(double v, bool signed = false)
    {
        double r = Verdicts.Round(v) ?? v;
        return (signed && r > 0 ? "+" : "") + r.ToString("0.0", CultureInfo.InvariantCulture);
    }
}
