using System.Xml.Linq;

namespace PeftWorkbench.Kernel.Notebooks;

/// <summary>The local NuGet feed that environment/setup.d/interactive.sh packs the workbench into (the repo's
/// artifacts/packages) and registers in the user's NuGet config as the source "peft-workbench"; .NET Interactive's
/// `#r "nuget: PeftWorkbench, VERSION"` restores from it.</summary>
public static class LocalFeed
{
    public const string SourceName = "peft-workbench";
    public const string SetupCommand = "bash environment/setup.sh (or just its step environment/setup.d/interactive.sh)";

    /// <summary>The user's NuGet config (~/.nuget/NuGet/NuGet.Config; NuGet accepts either spelling of the file name).</summary>
    public static string? UserConfig()
    {
        var dir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "NuGet");
        return new[] { "NuGet.Config", "NuGet.config", "nuget.config" }.Select(n => Path.Combine(dir, n)).FirstOrDefault(File.Exists);
    }

    /// <summary>The folder registered as the "peft-workbench" source, or null.</summary>
    public static string? Folder()
    {
        if (UserConfig() is not { } config) return null;
        try
        {
            return XDocument.Load(config).Root?.Element("packageSources")?.Elements("add")
                .FirstOrDefault(e => (string?)e.Attribute("key") == SourceName)?.Attribute("value")?.Value;
        }
        catch (System.Xml.XmlException) { return null; }
    }

    /// <summary>The PeftWorkbench versions in the feed (from its .nupkg names).</summary>
    public static IReadOnlyList<string> Versions(string folder) => !Directory.Exists(folder) ? Array.Empty<string>()
        : Directory.GetFiles(folder, "PeftWorkbench.*.nupkg").Select(f => Path.GetFileNameWithoutExtension(f)["PeftWorkbench.".Length..])
            .Where(v => v.Length > 0 && char.IsDigit(v[0])).Order(StringComparer.Ordinal).ToList();

    /// <summary>Null when the feed is registered and holds this build's version; else what is wrong and the command that fixes it.</summary>
    public static string? Problem()
    {
        var folder = Folder();
        if (folder is null)
            return $"no NuGet source \"{SourceName}\" in the user's NuGet config ({UserConfig() ?? "none"}): the local feed that serves `#r \"nuget: PeftWorkbench\"` to .NET Interactive is missing; {SetupCommand} creates and registers it.";
        if (!Versions(folder).Contains(Workbench.Version))
            return $"the local feed {folder} (NuGet source \"{SourceName}\") has no PeftWorkbench {Workbench.Version}; {SetupCommand} packs it there.";
        return null;
    }
}
