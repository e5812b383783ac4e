import { loadDescriptionFile } from "./constructs/description/load";
import { renderQueueExporter, autoscalingTasks, renderAutoscalerConfig } from "./constructs/render/jobs/autoscaler";
const r: any = loadDescriptionFile("clusters/example.yaml");
const w = process.argv[2];
console.log(w === "py" ? renderQueueExporter(r.cluster) : w === "cfg" ? renderAutoscalerConfig(r.cluster) : autoscalingTasks(r.cluster, "    "));
