using PeftWorkbench.Plots;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Data.Analysis;
using Microsoft.DotNet.Interactive.Formatting;
using TorchSharp;
using XPlot.Plotly;

namespace PeftWorkbench.Kernel.Display;

/// <summary>Turns a value into a Jupyter MIME bundle. text/plain is always present. One instance per kernel
/// session or notebook run, because plotly.js is embedded once per output document.</summary>
public sealed class Formatters
{
    public const int TableRows = 20;
    bool plotlyEmbedded;

    public Dictionary<string, string> Format(object? value)
    {
        var data = new Dictionary<string, string>();
        switch (value)
        {
            case null: data["text/plain"] = "null"; break;
            case string s: data["text/plain"] = s; break;
            case PlotlyChart chart:
                data["text/html"] = ChartHtml(chart);
                data["text/plain"] = "PlotlyChart (open the notebook in Jupyter or its HTML in a browser to see it)";
                break;
            case DataFrame df:
                data["text/html"] = DataFrameHtml(df);
                data["text/plain"] = DataFrameText(df);
                break;
            case torch.Tensor t:
                var text = TensorText(t);
                data["text/plain"] = text;
                data["text/html"] = $"<pre>{WebUtility.HtmlEncode(text)}</pre>";
                break;
            case torch.nn.Module module:
                data["text/plain"] = ModuleText(module);
                data["text/html"] = $"<pre>{WebUtility.HtmlEncode(data["text/plain"])}</pre>";
                break;
            case KernelImage img:
                data["image/png"] = Convert.ToBase64String(img.Png);
                data["text/plain"] = img.ToString();
                break;
            default:
                data["text/plain"] = PlainText(value);
                if (!IsScalar(value) && TryFormatting(value, "text/html") is { } html && html.Length <= MaxGenericChars) data["text/html"] = html;
                if (data["text/plain"].Length > MaxGenericChars) data["text/plain"] = data["text/plain"][..MaxGenericChars] + "\n... (truncated)";
                break;
        }
        return data;
    }

    /// <summary>The generic object formatter walks object graphs; a big graph must not flood the notebook.</summary>
    public const int MaxGenericChars = 100_000;

    static bool IsScalar(object v) => v is IConvertible or Guid or TimeSpan or DateTimeOffset or Enum;

    static string PlainText(object v)
    {
        if (v is IFormattable f && IsScalar(v)) return f.ToString(null, CultureInfo.InvariantCulture);
        return TryFormatting(v, "text/plain") ?? v.ToString() ?? v.GetType().Name;
    }

    static string? TryFormatting(object v, string mime)
    {
        try { return v.ToDisplayString(mime); }
        catch (Exception) { return null; } // a formatter that fails on an exotic type must not fail the cell
    }

    // ---- charts -------------------------------------------------------------------------------------------

    /// <summary>The chart's div and Plotly.newPlot call; the first chart of a session carries plotly.js itself,
    /// so a saved notebook (and nbconvert's HTML of it) draws offline.</summary>
    public string ChartHtml(PlotlyChart chart)
    {
        var sb = new StringBuilder();
        if (!plotlyEmbedded) { sb.Append(PlotlyJs.ScriptTags(Execution.ConsoleRouter.OriginalError.WriteLine)); plotlyEmbedded = true; }
        sb.Append(chart.GetInlineHtml());
        return sb.ToString();
    }

    // ---- tables -------------------------------------------------------------------------------------------

    public static string DataFrameHtml(DataFrame df)
    {
        long rows = df.Rows.Count;
        int cols = df.Columns.Count;
        var sb = new StringBuilder("<table class=\"dataframe\"><thead><tr><th></th>");
        foreach (var c in df.Columns) sb.Append("<th>").Append(WebUtility.HtmlEncode(c.Name)).Append("</th>");
        sb.Append("</tr></thead><tbody>");
        for (long r = 0; r < Math.Min(rows, TableRows); r++)
        {
            sb.Append("<tr><th>").Append(r).Append("</th>");
            foreach (var c in df.Columns) sb.Append("<td>").Append(WebUtility.HtmlEncode(Cell(c[r]))).Append("</td>");
            sb.Append("</tr>");
        }
        sb.Append("</tbody></table>");
        sb.Append("<p>").Append(rows).Append(" rows × ").Append(cols).Append(" columns");
        if (rows > TableRows) sb.Append(" (first ").Append(TableRows).Append(" shown)");
        return sb.Append("</p>").ToString();
    }

    public static string DataFrameText(DataFrame df)
    {
        long rows = Math.Min(df.Rows.Count, TableRows);
        var cols = df.Columns.ToList();
        var cells = cols.Select(c => new[] { c.Name }.Concat(Enumerable.Range(0, (int)rows).Select(r => Cell(c[r]))).ToArray()).ToList();
        var widths = cells.Select(col => col.Max(s => s.Length)).ToList();
        var sb = new StringBuilder();
        for (int r = 0; r <= rows; r++)
            sb.AppendLine(string.Join("  ", cells.Select((col, i) => col[r].PadRight(widths[i]))).TrimEnd());
        sb.Append($"[{df.Rows.Count} rows x {cols.Count} columns]");
        return sb.ToString();
    }

    static string Cell(object? v) => v switch
    {
        null => "null",
        float f => f.ToString("G6", CultureInfo.InvariantCulture),
        double d => d.ToString("G6", CultureInfo.InvariantCulture),
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    // ---- modules ------------------------------------------------------------------------------------------

    /// <summary>Type, parameter counts, and the direct children with theirs (the object graph would be megabytes).</summary>
    public static string ModuleText(torch.nn.Module module)
    {
        var ps = module.parameters().ToList();
        long total = ps.Sum(p => p.numel()), trainable = ps.Where(p => p.requires_grad).Sum(p => p.numel());
        var sb = new StringBuilder($"{module.GetType().Name}: {total:N0} parameters ({trainable:N0} trainable)");
        foreach (var (name, child) in module.named_children())
            sb.Append($"\n  {name,-14} {child.GetType().Name,-28} {child.parameters().Sum(p => p.numel()),12:N0}");
        return sb.ToString();
    }

    // ---- tensors ------------------------------------------------------------------------------------------

    public const int TensorPreviewElements = 100;

    public static string TensorText(torch.Tensor t)
    {
        if (t.IsInvalid) return "Tensor (disposed)";
        using var scope = torch.NewDisposeScope();
        var head = $"Tensor [{string.Join(", ", t.shape)}] {t.dtype} on {t.device}";
        var c = t.detach().cpu();
        if (c.numel() <= TensorPreviewElements) return head + "\n" + c.ToString(TensorStringStyle.Numpy);
        var flat = c.flatten();
        var sb = new StringBuilder(head).Append('\n');
        sb.Append($"first 10 of {c.numel()} values: ").Append(flat.narrow(0, 0, 10).ToString(TensorStringStyle.Numpy));
        if (c.is_floating_point())
        {
            var f = flat.to_type(torch.ScalarType.Float64);
            sb.Append('\n').Append(FormattableString.Invariant(
                $"min {f.min().item<double>():G5}, max {f.max().item<double>():G5}, mean {f.mean().item<double>():G5}, std {f.std().item<double>():G5}"));
        }
        return sb.ToString();
    }
}
