using System.Threading.Tasks;
using GLTFast;
using UnityEngine;

namespace AvatarForge
{
    /// <summary>Loads an exported avatar GLB at runtime with glTFast (the editor imports GLBs as assets instead).</summary>
    public sealed class AvatarAssetLoader : MonoBehaviour
    {
        [Tooltip("Path or URL of avatar.glb")]
        [SerializeField] string glbUri = "";
        [SerializeField] bool loadOnStart = true;

        public GltfImport Import { get; private set; }

        async void Start()
        {
            if (loadOnStart && !string.IsNullOrEmpty(glbUri)) await LoadAsync(glbUri);
        }

        /// <summary>Loads and instantiates the GLB under this transform; the head mesh carries the 52 ARKit blendshapes.</summary>
        public async Task<bool> LoadAsync(string uri)
        {
            var import = new GltfImport();
            if (!await import.Load(uri))
            {
                Debug.LogError("AvatarForge: glTFast could not load " + uri, this);
                return false;
            }
            if (!await import.InstantiateMainSceneAsync(transform))
            {
                Debug.LogError("AvatarForge: glTFast could not instantiate " + uri, this);
                return false;
            }
            Import = import;
            return true;
        }

        void OnDestroy()
        {
            if (Import != null) Import.Dispose();
        }
    }
}
