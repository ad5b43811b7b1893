// Loads a man_tf export the way tensorflow_model_server does
// (tensorflow::LoadSavedModel, tag "serve", a SavedModelBundle whose session
// runs a signature) and runs one signature on requests read from stdin.
//
//   serve_check MODEL_DIR SIGNATURE [OP_LIBRARY.so ...] < requests
//
// OP_LIBRARY: TF Text op libraries the export needs, loaded with
// TF_LoadLibrary before the model (TF Serving links them in). stdin: the
// language code on the first line, then one request row per line: raw text
// for "serving_default", whitespace-separated tokens for "tag_tokens".
// stdout, per output in key order: "OUTPUT key dtype dim0 dim1 ...", then
// its values flattened, one per line (floats with 9 significant digits).
// Built and run by man_tf/export/cc_check.py.

#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tensorflow/c/c_api.h"
#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"

namespace {

int Fail(const std::string& message) {
  std::cerr << "serve_check: " << message << std::endl;
  return 1;
}

void Print(const std::string& key, const tensorflow::Tensor& t) {
  std::cout << "OUTPUT " << key << " " << tensorflow::DataTypeString(t.dtype());
  for (int d = 0; d < t.dims(); ++d) std::cout << " " << t.dim_size(d);
  std::cout << "\n";
  const int64_t n = t.NumElements();
  char buffer[64];
  for (int64_t i = 0; i < n; ++i) {
    switch (t.dtype()) {
      case tensorflow::DT_STRING: std::cout << t.flat<tensorflow::tstring>()(i); break;
      case tensorflow::DT_FLOAT:
        std::snprintf(buffer, sizeof buffer, "%.9g", t.flat<float>()(i));
        std::cout << buffer;
        break;
      case tensorflow::DT_INT32: std::cout << t.flat<int32_t>()(i); break;
      case tensorflow::DT_INT64: std::cout << t.flat<int64_t>()(i); break;
      default: std::cout << "?"; break;
    }
    std::cout << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Fail("usage: serve_check MODEL_DIR SIGNATURE [OP_LIBRARY.so ...]");
  const std::string model_dir = argv[1], signature_name = argv[2];
  for (int i = 3; i < argc; ++i) {
    TF_Status* status = TF_NewStatus();
    TF_LoadLibrary(argv[i], status);  // registers the library's ops and kernels
    if (TF_GetCode(status) != TF_OK)
      return Fail(std::string(argv[i]) + ": " + TF_Message(status));
    TF_DeleteStatus(status);
  }

  tensorflow::SavedModelBundle bundle;
  const auto loaded = tensorflow::LoadSavedModel(
      tensorflow::SessionOptions(), tensorflow::RunOptions(), model_dir,
      {"serve"}, &bundle);  // kSavedModelTagServe (its header is not in the wheel)
  if (!loaded.ok()) return Fail(model_dir + ": " + std::string(loaded.message()));
  const auto& signatures = bundle.meta_graph_def.signature_def();
  const auto found = signatures.find(signature_name);
  if (found == signatures.end()) return Fail("no signature " + signature_name);
  const tensorflow::SignatureDef& signature = found->second;

  std::string language, line;
  std::getline(std::cin, language);
  std::vector<std::string> rows;
  while (std::getline(std::cin, line)) rows.push_back(line);
  const int64_t batch = rows.size();

  std::vector<std::vector<std::string>> tokens;
  size_t width = 1;
  for (const auto& row : rows) {
    std::istringstream words(row);
    std::vector<std::string> split;
    for (std::string word; words >> word;) split.push_back(word);
    width = std::max(width, split.size());
    tokens.push_back(split);
  }

  std::vector<std::pair<std::string, tensorflow::Tensor>> feeds;
  for (const auto& [key, info] : signature.inputs()) {
    tensorflow::Tensor tensor;
    if (key == "text" || key == "language") {
      tensor = tensorflow::Tensor(tensorflow::DT_STRING, tensorflow::TensorShape({batch}));
      for (int64_t i = 0; i < batch; ++i)
        tensor.flat<tensorflow::tstring>()(i) = key == "text" ? rows[i] : language;
    } else if (key == "tokens") {
      tensor = tensorflow::Tensor(tensorflow::DT_STRING,
                                  tensorflow::TensorShape({batch, int64_t(width)}));
      auto matrix = tensor.matrix<tensorflow::tstring>();
      for (int64_t i = 0; i < batch; ++i)
        for (size_t j = 0; j < width; ++j)
          matrix(i, j) = j < tokens[i].size() ? tokens[i][j] : "";
    } else if (key == "lengths") {
      tensor = tensorflow::Tensor(tensorflow::DT_INT32, tensorflow::TensorShape({batch}));
      for (int64_t i = 0; i < batch; ++i) tensor.flat<int32_t>()(i) = tokens[i].size();
    } else {
      return Fail("input " + key + " of " + signature_name + " is not one serve_check fills");
    }
    feeds.emplace_back(info.name(), tensor);
  }

  std::map<std::string, std::string> outputs;  // key -> tensor name, in key order
  for (const auto& [key, info] : signature.outputs()) outputs[key] = info.name();
  std::vector<std::string> names;
  for (const auto& [key, name] : outputs) names.push_back(name);
  std::vector<tensorflow::Tensor> results;
  const auto ran = bundle.session->Run(feeds, names, {}, &results);
  if (!ran.ok()) return Fail(signature_name + ": " + std::string(ran.message()));
  size_t i = 0;
  for (const auto& [key, name] : outputs) Print(key, results[i++]);
  return 0;
}
