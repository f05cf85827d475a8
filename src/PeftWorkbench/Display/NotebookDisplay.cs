using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Data.Analysis;
using PeftWorkbench.Plots;
using TorchSharp;
using XPlot.Plotly;

namespace PeftWorkbench.Display;

/// <summary>
/// How notebooks show the workbench's values, for any kernel: the MIME types of each kind of value and the text of
/// each. Our kernel (PeftWorkbench.Kernel's Formatters) and the .NET Interactive extension in the package
/// (interactive-extensions/dotnet/extension.dib) both call this, so the two kernels give the same outputs.
/// One instance per notebook session: plotly.js is embedded in the first chart's HTML only.
/// </summary>
public sealed class NotebookDisplay
{
    public const int TableRows = 20;
    public const int TensorPreviewElements = 100;
    public const string ChartText = "PlotlyChart (open the notebook in Jupyter or its HTML in a browser to see it)";

    /// <summary>The value kinds this module formats; a kernel registers its formatters for exactly these.</summary>
    public static readonly IReadOnlyList<Type> Types =
        new[] { typeof(PlotlyChart), typeof(DataFrame), typeof(torch.Tensor), typeof(torch.nn.Module), typeof(KernelImage) };

    readonly Action<string>? warn;
    bool plotlyEmbedded;

    /// <param name="warn">Where to say that plotly.js is missing (a kernel passes its real stderr).</param>
    public NotebookDisplay(Action<string>? warn = null) => this.warn = warn;

    public static bool Handles(object? value) => value is not null && Types.Any(t => t.IsInstanceOfType(value));

    /// <summary>The MIME types a value is shown with, preferred first; text/plain is always among them.</summary>
    public static string[] MimeTypes(object value) => MimeTypesOf(value.GetType());

    /// <summary>The MIME types of a kind of value (one of <see cref="Types"/> or a subclass).</summary>
    public static string[] MimeTypesOf(Type type) => typeof(KernelImage).IsAssignableFrom(type)
        ? new[] { "image/png", "text/plain" }
        : new[] { "text/html", "text/plain" };

    /// <summary>Every MIME type of <see cref="MimeTypes"/> with its text (image/png as base64, as Jupyter wants it).</summary>
    public Dictionary<string, string> Bundle(object value) => MimeTypes(value).ToDictionary(m => m, m => Format(value, m));

    /// <summary>One MIME type's text for a value this module handles.</summary>
    public string Format(object value, string mimeType) => (value, mimeType) switch
    {
        (PlotlyChart c, "text/html") => ChartHtml(c),
        (PlotlyChart, _) => ChartText,
        (DataFrame df, "text/html") => DataFrameHtml(df),
        (DataFrame df, _) => DataFrameText(df),
        (torch.Tensor t, "text/html") => Pre(TensorText(t)),
        (torch.Tensor t, _) => TensorText(t),
        (torch.nn.Module m, "text/html") => Pre(ModuleText(m)),
        (torch.nn.Module m, _) => ModuleText(m),
        (KernelImage img, "image/png") => Convert.ToBase64String(img.Png),
        (KernelImage img, _) => img.ToString(),
        _ => throw new ArgumentException($"NotebookDisplay does not format {value.GetType().Name} as {mimeType}."),
    };

    static string Pre(string text) => $"<pre>{WebUtility.HtmlEncode(text)}</pre>";

    // ---- charts -------------------------------------------------------------------------------------------

    /// <summary>The chart's div and Plotly.newPlot call; the first chart of a session carries plotly.js itself,
    /// so a saved notebook (and its HTML) draws offline.</summary>
    public string ChartHtml(PlotlyChart chart)
    {
        var sb = new StringBuilder();
        if (!plotlyEmbedded) { sb.Append(PlotlyJs.ScriptTags(warn)); plotlyEmbedded = true; }
        return sb.Append(Plots.Charts.InlineHtml(chart)).ToString(); // store strings cannot end the script
    }

    // ---- tables -------------------------------------------------------------------------------------------

    public static string DataFrameHtml(DataFrame df)
    {
        long rows = df.Rows.Count;
        int cols = df.Columns.Count;
        // Text reads from the left, numbers line up on the right: each column says which (Jupyter's own style and the
        // report's would otherwise right-align both).
        var align = df.Columns.Select(c => IsNumeric(c.DataType) ? " style=\"text-align: right\"" : " style=\"text-align: left\"").ToList();
        var sb = new StringBuilder("<table class=\"dataframe\"><thead><tr><th></th>");
        int i = 0;
        foreach (var c in df.Columns) sb.Append("<th").Append(align[i++]).Append('>').Append(WebUtility.HtmlEncode(c.Name)).Append("</th>");
        sb.Append("</tr></thead><tbody>");
        for (long r = 0; r < Math.Min(rows, TableRows); r++)
        {
            sb.Append("<tr><th>").Append(r).Append("</th>");
            i = 0;
            foreach (var c in df.Columns) sb.Append("<td").Append(align[i++]).Append('>').Append(WebUtility.HtmlEncode(Cell(c[r]))).Append("</td>");
            sb.Append("</tr>");
        }
        sb.Append("</tbody></table>");
        sb.Append("<p>").Append(rows).Append(" rows × ").Append(cols).Append(" columns");
        if (rows > TableRows) sb.Append(" (first ").Append(TableRows).Append(" shown)");
        return sb.Append("</p>").ToString();
    }

    /// <param name="maxRows">Rows shown (null: <see cref="TableRows"/>, as in a notebook; a command line prints them all).</param>
    public static string DataFrameText(DataFrame df, long? maxRows = null)
    {
        long rows = Math.Min(df.Rows.Count, maxRows ?? TableRows);
        var cols = df.Columns.ToList();
        var cells = cols.Select(c => new[] { c.Name }.Concat(Enumerable.Range(0, (int)rows).Select(r => Cell(c[r]))).ToArray()).ToList();
        var widths = cells.Select(col => col.Max(s => s.Length)).ToList();
        var sb = new StringBuilder();
        for (int r = 0; r <= rows; r++)
            sb.AppendLine(string.Join("  ", cells.Select((col, i) => col[r].PadRight(widths[i]))).TrimEnd());
        sb.Append($"[{df.Rows.Count} rows x {cols.Count} columns]");
        return sb.ToString();
    }

    static bool IsNumeric(Type t) => t == typeof(double) || t == typeof(float) || t == typeof(int) || t == typeof(long) || t == typeof(decimal)
        || t == typeof(short) || t == typeof(byte);

    /// <summary>A missing value (a figure the study did not report, a run that was not tuned) reads "n/a", not "null".</summary>
    static string Cell(object? v) => v switch
    {
        null => "n/a",
        float f => Round(f),
        double d => Round(d),
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    /// <summary>A reader's precision: at most two decimals from 1 up (68.9357 -> 68.94), three significant digits below
    /// (an lr of 0.001, a delta of 0.0123), whole numbers as they are.</summary>
    static string Round(double x) => double.IsFinite(x) && Math.Abs(x) < 1 && x != 0
        ? x.ToString("G3", CultureInfo.InvariantCulture)
        : x.ToString("0.##", CultureInfo.InvariantCulture);

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
