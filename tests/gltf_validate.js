// Validate a glTF/GLB file with the Khronos glTF-Validator (npm gltf-validator) and print its JSON report.
// Usage: node tests/gltf_validate.js FILE [NODE_MODULES_DIR]
const fs = require("fs");
const path = require("path");
const modules = process.argv[3] || path.join(__dirname, "..", ".venv", "node", "node_modules");
const validator = require(path.join(modules, "gltf-validator"));
const file = process.argv[2];
const data = new Uint8Array(fs.readFileSync(file));
validator
  .validateBytes(data, { uri: path.basename(file), maxIssues: 0, writeTimestamp: false })
  .then((report) => {
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  })
  .catch((error) => {
    process.stderr.write(String(error) + "\n");
    process.exit(2);
  });
