namespace PeftWorkbench.Checkpoints;

/// <summary>
/// Writes a file so that a reader only ever sees the old file or the complete new one: the bytes go to a temp
/// file beside it (same folder, so the rename stays on one file system), are flushed to disk, optionally
/// checked, and only then renamed over the target. A writer killed part-way leaves the old file intact (and a
/// stray temp file); an existing larger file is replaced whole, never overwritten in place.
/// </summary>
public static class AtomicFile
{
    /// <param name="write">Writes the content to the (fresh, empty) temp file's stream.</param>
    /// <param name="verify">Reads the finished temp file back (given its path) and throws if it is wrong; the
    /// target is then left as it was.</param>
    public static void Write(string path, Action<FileStream> write, Action<string>? verify = null)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            verify?.Invoke(tmp);
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}
