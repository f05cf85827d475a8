/// <summary>The one scratch folder of both test projects: a fresh folder under the system temp folder, removed with
/// everything in it when disposed. In the global namespace so that every test namespace sees it without a using.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("peft-tests-").FullName;

    /// <summary>A path inside the folder.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { } // a child process may still hold a file for a moment; the temp folder is cleaned eventually
    }
}
