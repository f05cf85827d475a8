namespace PeftWorkbench.Plots;

/// <summary>Finds plotly.js (npm plotly.js-dist-min@1.58.5, the version XPlot.Plotly 4.1 targets; installed by
/// environment/setup.d/kernel.sh) and wraps it in script tags that survive RequireJS pages.</summary>
public static class PlotlyJs
{
    public const string Version = "1.58.5";
    /// <summary>Marks the embedded library in an output, so renderers can tell it is already there.</summary>
    public const string Marker = "peft-plotly-js-" + Version;

    static string? cachedTags;

    /// <summary>$PEFT_PLOTLY_JS, else &lt;data dir&gt;/plotly/node_modules/plotly.js-dist-min/plotly.min.js, else null.</summary>
    public static string? Locate()
    {
        if (Environment.GetEnvironmentVariable("PEFT_PLOTLY_JS") is { Length: > 0 } env && File.Exists(env)) return env;
        var inCache = Path.Combine(Workbench.DataDir, "plotly", "node_modules", "plotly.js-dist-min", "plotly.min.js");
        return File.Exists(inCache) ? inCache : null;
    }

    /// <summary>The library inline; if it is not installed, a CDN tag (online only) and a warning through
    /// <paramref name="warn"/> (stderr by default; a kernel passes its real stderr, since cells' Console is redirected).</summary>
    public static string ScriptTags(Action<string>? warn = null)
    {
        if (cachedTags is not null) return cachedTags;
        var path = Locate();
        if (path is null)
        {
            (warn ?? Console.Error.WriteLine)(
                "[peft-workbench] plotly.js not found (run environment/setup.d/kernel.sh or set PEFT_PLOTLY_JS); charts will load it from the CDN and need a network.");
            return $"<script id=\"{Marker}\" src=\"https://cdn.plot.ly/plotly-{Version}.min.js\"></script>\n";
        }
        // plotly.js is UMD: with RequireJS on the page (classic notebook) it would register as a module and leave
        // window.Plotly undefined, so hide `define` while it loads.
        var js = File.ReadAllText(path).Replace("</script", "<\\/script", StringComparison.OrdinalIgnoreCase);
        return cachedTags =
            "<script>window.__peftDefine = window.define; window.define = undefined;</script>\n" +
            $"<script id=\"{Marker}\">{js}</script>\n" +
            "<script>window.define = window.__peftDefine;</script>\n";
    }
}
