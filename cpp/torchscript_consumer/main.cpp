// Load a TorchScript module saved from Python (torch.jit.save) and run it on one input tensor.
//
// Usage: torchscript_consumer MODULE.pt INPUT.bin D0,D1,...
//   INPUT.bin  raw little-endian float32 values (numpy's array.tofile), shape D0 x D1 x ...
//
// Prints one JSON line: {"load_ms": .., "run_ms": .., "shape": [..], "values": [..]}
// so Python can compare the numbers with its own run of the same module.
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    shape.push_back(std::stoll(item));
  }
  return shape;
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) {
    throw std::runtime_error("cannot open " + path);
  }
  const auto bytes = static_cast<std::size_t>(file.tellg());
  std::vector<float> values(bytes / sizeof(float));
  file.seekg(0);
  file.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(bytes));
  return values;
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: " << argv[0] << " MODULE.pt INPUT.bin D0,D1,...\n";
    return 2;
  }
  try {
    at::set_num_threads(1);  // deterministic and polite on shared machines
    const auto shape = parse_shape(argv[3]);
    auto values = read_floats(argv[2]);
    int64_t expected = 1;
    for (auto d : shape) expected *= d;
    if (static_cast<int64_t>(values.size()) != expected) {
      std::cerr << "input has " << values.size() << " floats, shape needs " << expected << "\n";
      return 2;
    }
    // from_blob does not copy: clone so the tensor owns its memory.
    torch::Tensor input = torch::from_blob(values.data(), shape, torch::kFloat32).clone();

    auto start = std::chrono::steady_clock::now();
    torch::jit::script::Module module = torch::jit::load(argv[1]);
    module.eval();
    const double load_ms = ms_since(start);

    torch::NoGradGuard no_grad;  // the C++ counterpart of torch.no_grad()
    start = std::chrono::steady_clock::now();
    torch::Tensor output = module.forward({input}).toTensor().contiguous();
    const double run_ms = ms_since(start);

    std::ostringstream json;
    json.precision(9);
    json << "{\"load_ms\": " << load_ms << ", \"run_ms\": " << run_ms << ", \"shape\": [";
    for (int64_t i = 0; i < output.dim(); ++i) {
      json << (i ? ", " : "") << output.size(i);
    }
    json << "], \"values\": [";
    const auto flat = output.to(torch::kFloat32).flatten();
    const float* data = flat.data_ptr<float>();
    for (int64_t i = 0; i < flat.numel(); ++i) {
      json << (i ? ", " : "") << data[i];
    }
    json << "]}";
    std::cout << json.str() << std::endl;
  } catch (const c10::Error& error) {
    std::cerr << "libtorch error: " << error.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
