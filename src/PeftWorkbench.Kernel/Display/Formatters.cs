using System.Globalization;
using Microsoft.DotNet.Interactive.Formatting;
using PeftWorkbench.Display;

namespace PeftWorkbench.Kernel.Display;

/// <summary>Turns a value into a Jupyter MIME bundle. text/plain is always present. The workbench's own kinds (charts,
/// DataFrames, tensors, modules, images) come from the library's <see cref="NotebookDisplay"/>, as under .NET
/// Interactive; other values from .NET Interactive's formatting library. One instance per kernel session or notebook
/// run, because plotly.js is embedded once per output document.</summary>
public sealed class Formatters
{
    readonly NotebookDisplay display = new(Execution.ConsoleRouter.OriginalError.WriteLine);

    public Dictionary<string, string> Format(object? value)
    {
        if (NotebookDisplay.Handles(value)) return display.Bundle(value!);
        var data = new Dictionary<string, string>();
        switch (value)
        {
            case null: data["text/plain"] = "null"; break;
            case string s: data["text/plain"] = s; break;
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
}
