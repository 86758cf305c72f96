// The dashboard's one page: self-contained HTML (inline CSS, inline JS, Chart.js's UMD bundle
// inlined from node_modules as the demo report does). It follows GET /events (Server-Sent
// Events, one JSON snapshot per message) and posts the buttons to /api/action with the token
// (from the URL's #token=..., or typed in; kept in localStorage).
import { chartJs } from '../util/chartjs.js';

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1e2430;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header h1{font-size:1.1rem;margin:0}#problem{color:#ffb4b4}#result{color:#b9f6ca}#result.err{color:#ffb4b4}
main{display:grid;grid-template-columns:minmax(340px,1fr) 2fr;gap:1rem;padding:1rem}
section{background:#fff;border:1px solid #ccd;border-radius:4px;padding:.6rem}
h2{font-size:1rem;margin:0 0 .4rem}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #dde;padding:.2rem .4rem;text-align:left}
th{background:#eef1f6}.yes{color:#b3141b;font-weight:bold}.primary{color:#0a5bd3;font-weight:bold}
button{margin:.15rem;padding:.25rem .5rem;border:1px solid #99a;border-radius:3px;background:#f3f5fa;cursor:pointer}
button:hover{background:#dfe6f5}button.op{background:#eaf7ee}
.group{margin:.3rem 0}.group b{display:inline-block;width:5.5rem}
#events{max-height:320px;overflow:auto;font:12px/1.35 ui-monospace,monospace;margin:0;padding:0;list-style:none}
#events li{border-bottom:1px solid #eee;padding:.1rem 0}#events .action{color:#7a3e00}
.chart{position:relative;height:300px}svg text{font:12px system-ui,sans-serif}
.muted{color:#667}
`;

const BODY = `
<header><h1>pgarbiter dashboard — <span id="name">…</span></h1>
<span id="summary" class="muted">connecting…</span><span id="problem"></span>
<label style="margin-left:auto">token <input id="token" type="password" size="20" autocomplete="off"></label>
<span id="result"></span></header>
<main>
<div>
<section><h2>Hosts and links</h2><svg id="topo" viewBox="0 0 360 260" width="100%" role="img" aria-label="lab topology"></svg>
<div id="linklegend" class="muted">green: up · red: cut · orange: lossy · dashed red: partitioned · blue: frozen</div></section>
<section><h2>Nodes</h2><table><thead><tr><th>node</th><th>role</th><th>state</th><th>term</th><th>tl</th><th>fenced</th><th>lag</th></tr></thead>
<tbody id="nodes"></tbody></table><div id="arbiter" class="muted"></div></section>
<section id="buttons"><h2>Faults and operations</h2><div id="labbuttons"></div><div id="opbuttons"></div></section>
</div>
<div>
<section><h2>Committed writes per second <span id="writer" class="muted"></span></h2><div class="chart"><canvas id="rate"></canvas></div></section>
<section><h2>Events</h2><ul id="events"></ul></section>
</div>
</main>`;

const SCRIPT = `
(function(){
var $=function(id){return document.getElementById(id)};
var tok=$('token');
var m=/token=([^&]+)/.exec(location.hash);
if(m){localStorage.setItem('pgarbiter-token',decodeURIComponent(m[1]));history.replaceState(null,'',location.pathname);}
tok.value=localStorage.getItem('pgarbiter-token')||'';
tok.addEventListener('change',function(){localStorage.setItem('pgarbiter-token',tok.value)});
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]})}
var HOSTS=['pg1','pg2','arbiter'];
var labB=[];
HOSTS.forEach(function(h){labB.push(['<b>'+h+'</b>',
 [['isolate '+h,{action:'isolate',host:h}],['heal '+h,{action:'heal',host:h}],['freeze '+h,{action:'freeze',host:h}],['thaw '+h,{action:'thaw',host:h}],
  ['kill '+h,{action:'kill',host:h}],['start '+h,{action:'start',host:h}],['loss 30% '+h,{action:'loss',host:h,percent:30}],['loss off '+h,{action:'loss',host:h,percent:0}]]])});
labB.push(['<b>partition</b>',[['partition pg1 x pg2',{action:'partition',a:'pg1',b:'pg2'}],['partition pg1 x arbiter',{action:'partition',a:'pg1',b:'arbiter'}],
 ['partition pg2 x arbiter',{action:'partition',a:'pg2',b:'arbiter'}],['unpartition all',{action:'unpartition'}]]]);
labB.push(['<b>writer</b>',[['start writer',{action:'writer-start'}],['stop writer',{action:'writer-stop'}]]]);
var opB=[['<b>cluster</b>',[['switchover',{action:'switchover'}],['maintenance on',{action:'maintenance',on:true}],['maintenance off',{action:'maintenance',on:false}]]]];
var acts={};
function groups(el,list,cls){el.innerHTML=list.map(function(g){return '<div class="group">'+g[0]+g[1].map(function(b){acts[b[0]]=b[1];
 return '<button class="'+cls+'" data-act="'+esc(b[0])+'">'+esc(b[0])+'</button>'}).join('')+'</div>'}).join('')}
groups($('opbuttons'),opB,'op');
var labShown=null;
document.addEventListener('click',function(ev){var b=ev.target.closest&&ev.target.closest('button[data-act]');if(!b)return;
 var name=b.getAttribute('data-act');var r=$('result');r.className='';r.textContent=name+' …';
 fetch('/api/action',{method:'POST',headers:{'content-type':'application/json',authorization:'Bearer '+tok.value},body:JSON.stringify(acts[name])})
 .then(function(res){return res.json().then(function(j){return [res.status,j]})})
 .then(function(x){var j=x[1];if(j.ok){r.textContent=name+': '+j.result}else{r.className='err';r.textContent=name+': '+(j.error||('HTTP '+x[0]))}})
 .catch(function(e){r.className='err';r.textContent=name+': '+e});});
var POS={pg1:[60,60],pg2:[300,60],arbiter:[60,210],client:[300,210]};var SW=[180,135];
var COL={up:'#1a9a4a',cut:'#d0262d',lossy:'#e98b00',missing:'#999'};
function topo(s){var L=s.links;var svg=$('topo');if(!L){svg.innerHTML='<text x="10" y="20">no lab links (a deployment, or the lab is not up)</text>';return}
 var h='';L.hosts.forEach(function(x){var p=POS[x.host];if(!p)return;h+='<line id="link-'+x.host+'" data-state="'+x.state+'" x1="'+p[0]+'" y1="'+p[1]+'" x2="'+SW[0]+'" y2="'+SW[1]+'" stroke="'+COL[x.state]+'" stroke-width="4"'+(x.state==='lossy'?' stroke-dasharray="8 4"':'')+'/>'});
 L.partitions.forEach(function(pp){var a=POS[pp.a],b=POS[pp.b];if(!a||!b)return;h+='<line class="partition" x1="'+a[0]+'" y1="'+a[1]+'" x2="'+b[0]+'" y2="'+b[1]+'" stroke="#d0262d" stroke-width="2" stroke-dasharray="4 4"/>'+
  '<text x="'+((a[0]+b[0])/2-6)+'" y="'+((a[1]+b[1])/2+4)+'" fill="#d0262d" font-weight="bold">✕</text>'});
 h+='<rect x="'+(SW[0]-30)+'" y="'+(SW[1]-14)+'" width="60" height="28" rx="4" fill="#445"/><text x="'+(SW[0]-20)+'" y="'+(SW[1]+5)+'" fill="#fff">switch</text>';
 var roles={};(s.nodes||[]).forEach(function(n){roles[n.name]=n});
 L.hosts.forEach(function(x){var p=POS[x.host];if(!p)return;var n=roles[x.host];var fill=x.frozen?'#cfe3ff':'#fff';
  h+='<g id="host-'+x.host+'"><rect x="'+(p[0]-48)+'" y="'+(p[1]-22)+'" width="96" height="44" rx="6" fill="'+fill+'" stroke="'+COL[x.state]+'" stroke-width="2"/>'+
  '<text x="'+(p[0]-40)+'" y="'+(p[1]-4)+'" font-weight="bold">'+x.host+'</text><text x="'+(p[0]-40)+'" y="'+(p[1]+13)+'" class="muted">'+
  esc(x.frozen?'frozen':n?(n.role+(n.fenced?' fenced':'')):x.state)+(x.loss?' '+x.loss+'%':'')+'</text></g>'});
 svg.innerHTML=h}
function nodes(s){$('nodes').innerHTML=s.nodes.map(function(n){return '<tr id="node-'+n.name+'"><td>'+n.name+(n.seenFrom==='self'?' <span class="muted" title="the client cannot reach it: read inside its own host">(own host)</span>':'')+'</td>'+
 '<td data-field="role" class="'+(n.role==='primary'?'primary':'')+'">'+esc(n.role)+'</td><td data-field="state">'+esc(n.state)+'</td><td data-field="term">'+(n.term==null?'?':n.term)+'</td>'+
 '<td data-field="timeline">'+(n.timeline==null?'?':n.timeline)+'</td><td data-field="fenced" class="'+(n.fenced?'yes':'')+'">'+(n.fenced==null?'?':n.fenced?'yes':'no')+'</td>'+
 '<td data-field="lag">'+(n.lagBytes==null?'':n.lagBytes+' B')+'</td></tr>'}).join('');
 var a=s.arbiter;$('arbiter').textContent='arbiter: '+(a.reachable?'reachable':'unreachable from the client')+(a.term!=null?', term '+a.term+', primary of record '+a.primary+(a.maintenance?', MAINTENANCE':''):'');}
var chart=null;
var markPlugin={id:'marks',afterDatasetsDraw:function(c){var ms=c.$marks||[];var x=c.scales.x,y=c.scales.y,ctx=c.ctx;ctx.save();ctx.font='11px system-ui';
 ms.forEach(function(m,i){if(m.t<x.min||m.t>x.max)return;var px=x.getPixelForValue(m.t);ctx.strokeStyle=m.src==='action'?'#d0262d':'#6a3fb5';ctx.setLineDash([4,3]);
  ctx.beginPath();ctx.moveTo(px,y.top);ctx.lineTo(px,y.bottom);ctx.stroke();ctx.setLineDash([]);ctx.fillStyle=ctx.strokeStyle;ctx.fillText(m.label,px+3,y.top+12+(i%6)*12)});ctx.restore()}};
function rate(s){var labels=s.rate.map(function(p){return p.t});
 if(!chart){chart=new Chart($('rate'),{type:'line',data:{datasets:[{label:'committed / s',data:[],borderColor:'#0a5bd3',pointRadius:0,tension:0.2},
  {label:'failed or unknown / s',data:[],borderColor:'#d0262d',pointRadius:0}]},plugins:[markPlugin],options:{animation:false,responsive:true,maintainAspectRatio:false,
  scales:{x:{type:'linear',ticks:{callback:function(v){return new Date(v).toISOString().slice(11,19)}}},y:{beginAtZero:true}}}})}
 chart.data.datasets[0].data=s.rate.map(function(p){return {x:p.t,y:p.acks}});chart.data.datasets[1].data=s.rate.map(function(p){return {x:p.t,y:p.fails}});
 var from=labels.length?labels[0]:s.at-180000;chart.options.scales.x.min=from;chart.options.scales.x.max=s.at;
 chart.$marks=s.events.filter(function(e){return e.mark&&e.t>=from}).map(function(e){return {t:e.t,label:e.mark,src:e.source}}).reverse();chart.update('none');
 var w=s.writer;$('writer').textContent=w.ledger?((w.running?'writer running':'writer stopped')+' · '+w.acks+' committed, '+w.fails+' failed/unknown'):'(no writer: press "start writer")'}
function evs(s){$('events').innerHTML=s.events.map(function(e){return '<li class="'+e.source+'">'+new Date(e.t).toISOString().slice(11,23)+' '+esc(e.text)+'</li>'}).join('')}
function apply(s){$('name').textContent=s.name;$('problem').textContent=s.problem||'';
 $('summary').textContent='updated '+new Date(s.at).toISOString().slice(11,19)+' UTC';
 if(labShown!==s.labActions){labShown=s.labActions;if(s.labActions)groups($('labbuttons'),labB,'');else $('labbuttons').innerHTML='<p class="muted">a deployment: no lab faults here</p>'}
 topo(s);nodes(s);rate(s);evs(s);document.body.setAttribute('data-updated',String(s.at))}
var es=new EventSource('/events');
es.onmessage=function(m){try{apply(JSON.parse(m.data))}catch(e){$('problem').textContent='bad update: '+e}};
es.onerror=function(){$('summary').textContent='connection lost, retrying…'};
})();
`;

export function renderPage(): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>pgarbiter dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${CSS}</style>
<script>${chartJs()}</script></head><body>${BODY}<script>${SCRIPT}</script></body></html>`;
}
