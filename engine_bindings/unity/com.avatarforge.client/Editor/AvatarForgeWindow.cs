using System;
using System.Collections.Generic;
using System.IO;
using AvatarForge.Client;
using UnityEditor;
using UnityEngine;
using Proto = global::AvatarForge.V1;

namespace AvatarForge.Editor
{
    /// <summary>
    /// Window > AvatarForge: create avatars from portraits, list what the server holds, and bake an
    /// avatar into the project (GLB + blendshape tables written under Assets/, imported by glTFast's
    /// importer as a prefab with the 52 ARKit blendshapes).
    /// </summary>
    public sealed class AvatarForgeWindow : EditorWindow
    {
        const string AssetRoot = "Assets/AvatarForge";

        [SerializeField] AvatarForgeSettings settings;
        [SerializeField] string portraitPath = "";
        [SerializeField] string displayName = "";
        [SerializeField] int textureSize = 1024;
        [SerializeField] bool includeTriplane;

        readonly List<Proto.AvatarInfo> avatars = new List<Proto.AvatarInfo>();
        string status = "";
        float progress = -1f;
        bool busy;
        Vector2 scroll;

        [MenuItem("Window/AvatarForge")]
        static void Open()
        {
            GetWindow<AvatarForgeWindow>("AvatarForge");
        }

        void OnGUI()
        {
            settings = (AvatarForgeSettings)EditorGUILayout.ObjectField("Settings", settings, typeof(AvatarForgeSettings), false);
            if (settings == null)
            {
                EditorGUILayout.HelpBox("Create settings with Assets > Create > AvatarForge > Settings.", MessageType.Info);
                return;
            }

            using (new EditorGUI.DisabledScope(busy))
            {
                EditorGUILayout.Space();
                EditorGUILayout.LabelField("Create", EditorStyles.boldLabel);
                using (new EditorGUILayout.HorizontalScope())
                {
                    portraitPath = EditorGUILayout.TextField("Portrait", portraitPath);
                    if (GUILayout.Button("...", GUILayout.Width(30)))
                    {
                        string chosen = EditorUtility.OpenFilePanelWithFilters("Portrait", "", new[] { "Images", "png,jpg,jpeg,webp" });
                        if (!string.IsNullOrEmpty(chosen)) portraitPath = chosen;
                    }
                }
                displayName = EditorGUILayout.TextField("Display name", displayName);
                if (GUILayout.Button("Create avatar")) Create();

                EditorGUILayout.Space();
                EditorGUILayout.LabelField("Bake", EditorStyles.boldLabel);
                textureSize = EditorGUILayout.IntPopup("Texture size", textureSize, new[] { "512", "1024", "2048", "4096" }, new[] { 512, 1024, 2048, 4096 });
                includeTriplane = EditorGUILayout.Toggle("Include triplane", includeTriplane);
                using (new EditorGUILayout.HorizontalScope())
                {
                    if (GUILayout.Button("Refresh list")) Refresh();
                    if (GUILayout.Button("Check server")) CheckServer();
                }
            }

            if (progress >= 0f) EditorGUI.ProgressBar(EditorGUILayout.GetControlRect(), progress, status);
            else if (!string.IsNullOrEmpty(status)) EditorGUILayout.HelpBox(status, MessageType.None);

            scroll = EditorGUILayout.BeginScrollView(scroll);
            foreach (var avatar in avatars.ToArray())
            {
                using (new EditorGUILayout.HorizontalScope())
                {
                    EditorGUILayout.LabelField(string.IsNullOrEmpty(avatar.DisplayName) ? "(unnamed)" : avatar.DisplayName, GUILayout.Width(140));
                    EditorGUILayout.SelectableLabel(avatar.AvatarId.Substring(0, Math.Min(16, avatar.AvatarId.Length)), GUILayout.Height(18));
                    using (new EditorGUI.DisabledScope(busy))
                    {
                        if (GUILayout.Button("Bake", GUILayout.Width(60))) Bake(avatar.AvatarId);
                        if (GUILayout.Button("Delete", GUILayout.Width(60)) &&
                            EditorUtility.DisplayDialog("AvatarForge", "Delete this avatar from the server?", "Delete", "Cancel"))
                            Delete(avatar.AvatarId);
                    }
                }
            }
            EditorGUILayout.EndScrollView();
        }

        // Editor awaits resume on the main thread (UnitySynchronizationContext), so UI state is safe to touch.
        async void Run(string what, Func<AvatarForgeClient, System.Threading.Tasks.Task> work)
        {
            busy = true;
            status = what + "...";
            progress = -1f;
            Repaint();
            try
            {
                using (var client = settings.CreateClient()) await work(client);
            }
            catch (Exception e)
            {
                status = what + " failed: " + e.Message;
                Debug.LogError("AvatarForge: " + status);
            }
            finally
            {
                busy = false;
                progress = -1f;
                Repaint();
            }
        }

        IProgress<Proto.Progress> Reporter(string what)
        {
            return new Progress<Proto.Progress>(p =>
            {
                progress = p.Fraction;
                status = what + ": " + p.Stage + (string.IsNullOrEmpty(p.Message) ? "" : " - " + p.Message);
                Repaint();
            });
        }

        void Create()
        {
            if (!File.Exists(portraitPath))
            {
                status = "Choose a portrait file first.";
                return;
            }
            Run("Creating", async client =>
            {
                string name = string.IsNullOrEmpty(displayName) ? Path.GetFileNameWithoutExtension(portraitPath) : displayName;
                var avatar = await client.CreateAvatarAsync(File.ReadAllBytes(portraitPath), name, Reporter("Creating"));
                status = "Created " + avatar.AvatarId;
                avatars.RemoveAll(a => a.AvatarId == avatar.AvatarId);
                avatars.Insert(0, avatar);
            });
        }

        void Refresh()
        {
            Run("Listing", async client =>
            {
                var list = await client.ListAvatarsAsync();
                avatars.Clear();
                avatars.AddRange(list);
                status = list.Count + " avatars on the server";
            });
        }

        void CheckServer()
        {
            Run("Checking", async client =>
            {
                var info = await client.GetServerInfoAsync();
                status = "Server " + info.Version + ": generator " + info.DefaultGenerator + ", " + info.RasterizerBackend + " on " + info.Device +
                         (info.AuthRequired ? ", token required" : "");
            });
        }

        void Delete(string avatarId)
        {
            Run("Deleting", async client =>
            {
                bool deleted = await client.DeleteAvatarAsync(avatarId);
                avatars.RemoveAll(a => a.AvatarId == avatarId);
                status = deleted ? "Deleted " + avatarId : avatarId + " was not on the server";
            });
        }

        void Bake(string avatarId)
        {
            Run("Baking", async client =>
            {
                string folder = AssetRoot + "/" + avatarId.Substring(0, Math.Min(12, avatarId.Length));
                var formats = new List<Proto.ExportFormat> { Proto.ExportFormat.Glb, Proto.ExportFormat.Tables };
                if (includeTriplane) formats.Add(Proto.ExportFormat.Triplane);
                var options = new Proto.ExportOptions { TextureSize = (uint)textureSize };
                string fullFolder = Path.GetFullPath(folder);
                var files = await client.ExportAsync(avatarId, formats, fullFolder, options, null, Reporter("Baking"));
                // glTFast's scripted importer turns the .glb into a prefab; blendshapes.json imports as a TextAsset.
                AssetDatabase.Refresh();
                var prefab = AssetDatabase.LoadMainAssetAtPath(folder + "/avatar.glb");
                if (prefab != null) EditorGUIUtility.PingObject(prefab);
                status = "Baked " + files.Count + " files into " + folder;
            });
        }
    }
}
